"""The GraphQL layer: Strawberry types, resolvers and the @requires directive. Kept thin."""
