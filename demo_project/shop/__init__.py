"""The demo ticket shop: events with limited stock, sold through a ticketqueue waiting room."""
