"""Integrity jobs (queue `integrity`): the light pass over recent likes every few minutes and
the full pass over the rolling window nightly (SPEC §5 "Jobs"). Safe to run twice: one pass at
a time, and a finding met again meets its case."""

from celery import shared_task

from integrity.services.passes import integrity_full_pass, integrity_light_pass


@shared_task(acks_late=True)
def integrity_light() -> int:
    return integrity_light_pass().opened


@shared_task(acks_late=True)
def integrity_full() -> int:
    return integrity_full_pass().opened
