"""One module per door: GraphQL, forward-auth, health and metrics, pages. Each admits requests through the
gate (gate.py) and renders refusals its own way; responses.py holds the JSON shapes they share."""
