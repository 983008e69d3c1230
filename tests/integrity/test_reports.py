"""Reports as integrity signals (SPEC §5 "user reports", docs/reports.md)."""

import pytest

from engagement.models import Report
from engagement.services.reports import reports_action
from integrity.models import Case, Signal
from integrity.services.cases import AccountSpan, Finding, case_open
from integrity.services.signals import report_signals_record
from tests.conftest import database_state
from tests.factories import (
    CommentFactory,
    ReportFactory,
    StaffUserFactory,
    UserFactory,
    VideoFactory,
)
from tests.integrity.farm import span

pytestmark = pytest.mark.django_db


def test_reports_become_one_signal_each_about_the_account_behind_the_target() -> None:
    # given reports of a user, of a video and of a comment, and a creator reporting their own video
    bot, creator, author = UserFactory.create_batch(3)
    video = VideoFactory.create(creator=creator)
    comment = CommentFactory.create(user=author, video=video)
    of_user = ReportFactory.create(target_type="user", target_id=bot.pk, ip="198.51.100.7")
    of_video = ReportFactory.create(target_type="video", target_id=video.pk)
    of_comment = ReportFactory.create(target_type="comment", target_id=comment.pk)
    ReportFactory.create(reporter=creator, target_type="video", target_id=video.pk)

    # when they are recorded (twice)
    assert report_signals_record() == 3
    assert report_signals_record() == 0

    # then one report signal per report, about the account, without a case
    signals = {
        signal.report_id: (signal.kind, signal.account_id, signal.case_id, signal.score)
        for signal in Signal.objects.all()
    }
    assert signals == {
        of_user.pk: ("report", bot.pk, None, 1.0),
        of_video.pk: ("report", creator.pk, None, 1.0),
        of_comment.pk: ("report", author.pk, None, 1.0),
    }
    evidence = Signal.objects.get(report=of_user).evidence
    assert evidence["reporter_id"] == of_user.reporter_id
    assert evidence["reporter_ip"] == "198.51.100.7"
    assert (evidence["target_type"], evidence["target_id"]) == ("user", bot.pk)


def test_only_the_named_reports_are_recorded() -> None:
    bot = UserFactory.create()
    first, second = (ReportFactory.create(target_type="user", target_id=bot.pk) for _ in range(2))
    assert report_signals_record(report_ids=[second.pk]) == 1
    assert list(Signal.objects.values_list("report_id", flat=True)) == [second.pk]
    assert first.pk != second.pk


def test_actioning_a_report_confirms_nothing() -> None:
    bot = UserFactory.create()
    report = ReportFactory.create(target_type="user", target_id=bot.pk)
    report_signals_record()
    start, end = span(report.created_at)
    signal = Signal.objects.get(report=report)
    case = case_open(
        finding=Finding(
            accounts=[AccountSpan(bot.pk, start, end)],
            score=0.4,
            fingerprint="report:1",
            signal_ids=[signal.pk],
        )
    ).case
    assert case is not None
    signal.refresh_from_db()
    assert signal.case_id == case.pk
    staff = StaffUserFactory.create()
    before = database_state()

    reports_action(report_ids=[report.pk], staff=staff, note="warned them")

    case.refresh_from_db()
    assert case.status == Case.Status.OPEN
    after = database_state()
    assert after.pop("report statuses") == {Report.Status.ACTIONED: 1}
    before.pop("report statuses")
    assert after == before
