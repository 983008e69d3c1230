"""The `integrity` app's registration on the integrity-bench branch only.

integrity/__init__.py and integrity/apps.py come with the integrity-cases branch; until they
are merged `integrity` is a namespace package, which Django cannot place on its own (the
editable install gives it a second location), so this config names its folder. When the two
branches meet, INSTALLED_APPS takes `integrity`'s own config and this file goes.
"""

from pathlib import Path

from django.apps import AppConfig


class IntegrityBenchConfig(AppConfig):
    name = "integrity"
    label = "integrity"
    path = str(Path(__file__).resolve().parent.parent / "integrity")
    default_auto_field = "django.db.models.BigAutoField"
