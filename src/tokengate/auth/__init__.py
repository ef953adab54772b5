"""Who is this, and refused why: the gate, credentials, the principal cache, IP rules, invalidations."""
