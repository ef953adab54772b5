"""Running GraphQL documents: parse, validate, cost, compiled plans, persisted queries."""
