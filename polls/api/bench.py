"""The Django tutorial's vote on Chorus's tables: the peer `make bench` compares the full vote
with (`vote_vs_tutorial_ratio`). Mounted only when BENCH_ENDPOINTS is on, never in production.

As the tutorial writes it (polls/views.py `vote`): a plain Django view, the question looked up
(404 when missing), the choice among its choices, `F("votes") + 1` saved on one row, a redirect
to the results — no authentication, no CSRF check (the bench posts no form), no dedupe, no
idempotency, no throttle. Here the question is a sticker, the choice one of its options and the
row the sticker's live tally (its `total_votes`). The bench points it at a sticker of its own that
nobody votes on; the tallies worker would rebuild that row from the votes on its next refresh.
"""

from django.db.models import F
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from polls.models import Sticker, StickerOption, StickerTally


@csrf_exempt
@require_POST
def tutorial_vote(request: HttpRequest, sticker_id: int) -> HttpResponse:
    sticker = get_object_or_404(Sticker, pk=sticker_id)
    try:
        sticker.options.get(pk=request.POST["choice"])
    except (KeyError, ValueError, StickerOption.DoesNotExist):
        return HttpResponseBadRequest("You didn't select a choice.")
    StickerTally.objects.filter(sticker=sticker).update(total_votes=F("total_votes") + 1)
    return HttpResponseRedirect(f"/api/v1/stickers/{sticker.pk}/results")
