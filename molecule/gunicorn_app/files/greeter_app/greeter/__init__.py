"""A user's own WSGI application: needs webinfra_greeting from a wheel."""
