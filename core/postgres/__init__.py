"""Django's PostgreSQL backend with a health check that costs no round trip (see `base`).

Used as `ENGINE` (settings DATABASES); everything but the check is Django's.
"""
