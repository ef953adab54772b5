"""The GraphQL layer: the engine (documents, cost, plans) apart from the schema (types, resolvers)."""
