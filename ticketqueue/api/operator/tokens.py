"""Staff tokens for the operator API: simplejwt's obtain and refresh views, limited per address
like the rest of the API, giving tokens to staff only (this endpoint must not become a way to
get the site's own API tokens for any account)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.openapi import AutoSchema
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer
from rest_framework_simplejwt.views import TokenObtainPairView
from rest_framework_simplejwt.views import TokenRefreshView as SimpleTokenRefreshView

from ..exceptions import exception_handler
from .auth import check_address

__all__ = ["TokenObtainView", "TokenRefreshView"]


class StaffTokenSerializer(TokenObtainPairSerializer):
    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        data = super().validate(attrs)
        if not self.user.is_staff:
            raise exceptions.PermissionDenied(_("Operator tokens are for staff accounts."))
        return data


class _Limited:
    in_queue_api = True  # in the API's OpenAPI schema (ticketqueue.api.schema)
    schema = AutoSchema()  # drf-spectacular's, whatever the site's DEFAULT_SCHEMA_CLASS
    renderer_classes = [JSONRenderer]

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        check_address(request, "operator_token_ip")  # password guesses, counted apart
        super().initial(request, *args, **kwargs)  # type: ignore[misc]

    def get_exception_handler(self) -> Any:
        return exception_handler


class TokenObtainView(_Limited, TokenObtainPairView):
    """POST username and password: an access and a refresh token (staff only)."""

    serializer_class = StaffTokenSerializer


class TokenRefreshView(_Limited, SimpleTokenRefreshView):
    """POST a refresh token: a new access token."""
