"""URLs of the app; the REST API and the waiting page hang off here."""

app_name = "ticketqueue"
urlpatterns: list = []
