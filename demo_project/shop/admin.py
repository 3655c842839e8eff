from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from .models import Event, Order


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["name", "starts_at", "venue", "price", "stock", "total", "queue_state"]
    search_fields = ["name", "slug", "venue"]
    prepopulated_fields = {"slug": ["name"]}

    @admin.display(description=_("queue"))
    def queue_state(self, obj: Event) -> str:
        queue = obj.queue
        return queue.get_state_display() if queue else "-"


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["pk", "event", "quantity", "amount", "identity", "queue_seq", "created_at"]
    list_filter = ["event"]
    search_fields = ["identity", "pass_jti"]
    list_select_related = ["event"]
    readonly_fields = [f.name for f in Order._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # orders come from the queue and a pass, never by hand
