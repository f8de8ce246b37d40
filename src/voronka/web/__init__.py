"""The web app: the board, deal cards, dashboards, settings and the JSON API (``create_app``)."""
