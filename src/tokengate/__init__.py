"""tokengate: a GraphQL authorization service for service account tokens."""
