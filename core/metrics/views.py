"""GET /metrics: the Prometheus text format, for scrapers on allowed networks and for staff.

Anyone else gets the same 404 problem document as an unknown address, so the endpoint does not
reveal that it exists. It is a plain Django view: no DRF throttle counts a scrape, and the
OpenAPI schema (DRF views only) does not list it.
"""

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from rest_framework.exceptions import AuthenticationFailed

from core.authentication import BearerTokenAuthentication
from core.client import client_ip
from core.errors import problem_response
from core.metrics.collectors import scrape_registry
from core.metrics.families import MULTIPROCESS_DIRECTORY

# Headers a reverse proxy adds. Behind a proxy that settings.NUM_PROXIES does not declare, the
# peer address is the proxy's (often loopback), not the client's: such a request is never let
# in by its address.
_PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=4)
def _networks(specs: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(spec.strip(), strict=False) for spec in specs if spec)


def is_address_allowed(request: HttpRequest) -> bool:
    """The client's address lies in settings.METRICS_ALLOWED_NETWORKS."""
    num_proxies = settings.REST_FRAMEWORK.get("NUM_PROXIES") or 0
    if num_proxies == 0 and any(header in request.META for header in _PROXY_HEADERS):
        return False
    address = client_ip(request, num_proxies)
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in _networks(tuple(settings.METRICS_ALLOWED_NETWORKS)))


def is_staff(request: HttpRequest) -> bool:
    """A staff user, logged in to the admin (session) or presenting a Bearer token."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    try:
        authenticated = BearerTokenAuthentication().authenticate(request)
    except AuthenticationFailed:
        return False
    return authenticated is not None and authenticated[0].is_staff


@csrf_exempt
def metrics(request: HttpRequest) -> HttpResponse | JsonResponse:
    if not settings.METRICS_ENABLED or not (is_address_allowed(request) or is_staff(request)):
        return problem_response(request, 404)
    if request.method not in ("GET", "HEAD"):
        response = problem_response(request, 405)
        response["Allow"] = "GET, HEAD"
        return response
    body = generate_latest(scrape_registry(MULTIPROCESS_DIRECTORY))
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
