"""Schemathesis over the whole served OpenAPI schema: whatever it sends, no 5xx. The operator
API's calls carry an operate key, so they reach its views rather than stop at 401."""

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings

from ticketqueue import apikeys, services
from ticketqueue.models import OperatorKey, Queue

pytestmark = pytest.mark.django_db(transaction=True)

#: Examples per operation: the whole schema (22 operations) runs in about half a minute.
EXAMPLES = 40


@pytest.fixture
def api_schema(settings):
    # Real queues to find among the invented slugs.
    for slug, mode in (("sale", "auto"), ("line", "always")):
        queue = Queue.objects.create(slug=slug, name=slug, mode=mode, capacity=5)
        services.configure(queue)
    settings.TICKETQUEUE = {
        **settings.TICKETQUEUE,
        "THROTTLE_RATES": dict.fromkeys(
            ("join_ip", "join_identity", "status_ip", "operator_ip", "operator_token_ip")
        ),
    }
    return schemathesis.openapi.from_wsgi("/queue/api/schema/?format=json", get_wsgi_application())


def test_no_server_errors(api_schema):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 22
    _row, key = apikeys.issue("schemathesis", access=OperatorKey.Access.OPERATE)
    seen = []
    by_operation = {}

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def no_5xx(case):
            slug = (case.path_parameters or {}).get("queue")
            if slug is not None:
                # Invented slugs are unknown queues (404): point two in three at real ones.
                case.path_parameters["queue"] = (slug, "sale", "line")[len(slug) % 3]
            headers = {"Authorization": f"Bearer {key}"} if "/operator/" in case.path else {}
            response = case.call(headers=headers)
            seen.append(response.status_code)
            by_operation.setdefault(f"{case.method} {case.path}", set()).add(response.status_code)
            assert response.status_code < 500, (case.method, case.path, response.text[:300])

        no_5xx()
    assert any(200 <= s < 300 for s in seen) and any(400 <= s < 500 for s in seen)
    # The key opened every operator operation (token logins with invented passwords cannot).
    unreached = [
        op
        for op, statuses in by_operation.items()
        if "/operator/" in op and "/token/" not in op and not any(s < 300 for s in statuses)
    ]
    assert unreached == []
