"""The API's JSON-only content negotiation: DRF's answer, without DRF's parse for the plain
Accept headers."""

import pytest
from django.test import Client, RequestFactory
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request

from ticketqueue.api.negotiation import JSONNegotiation

ACCEPTS = [
    None,
    "*/*",
    "application/json",
    "application/json; indent=4",
    "application/*",
    "text/html",
    "text/html, */*;q=0.8",
    "application/xml",
    "*/*;q=0.5",
]


def _answer(negotiation, accept, query, renderers):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(RequestFactory().get(f"/x/{query}", **headers))
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers)
    except NotAcceptable:
        return "406"
    return type(renderer), media_type


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("query", ["", "?format=json", "?format=api", "?page=2"])
@pytest.mark.parametrize("renderers", [[JSONRenderer], [JSONRenderer, BrowsableAPIRenderer]])
def test_the_answer_is_drfs_own(accept, query, renderers):
    made = [renderer() for renderer in renderers]
    try:
        expected = _answer(DefaultContentNegotiation(), accept, query, made)
    except Exception as error:  # noqa: BLE001 - DRF's own refusal (a 404 for ?format=api)
        with pytest.raises(type(error)):
            _answer(JSONNegotiation(), accept, query, made)
        return
    assert _answer(JSONNegotiation(), accept, query, made) == expected


@pytest.mark.django_db
def test_the_api_still_refuses_what_it_cannot_render_and_honours_parameters(make_queue):
    make_queue()
    plain = Client().get("/queue/api/queues/sale/", HTTP_ACCEPT="application/json")
    assert plain.status_code == 200 and b"\n" not in plain.content
    indented = Client().get("/queue/api/queues/sale/", HTTP_ACCEPT="application/json; indent=2")
    assert indented.status_code == 200 and indented.content.startswith(b'{\n  "queue"')
    refused = Client().get("/queue/api/queues/sale/", HTTP_ACCEPT="text/html")
    assert refused.status_code == 406 and refused.json()["code"] == "not_acceptable"
