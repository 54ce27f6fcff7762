"""The demo's Django project: settings and URLs only."""
