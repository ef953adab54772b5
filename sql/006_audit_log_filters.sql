-- The audit log's filters (Account.auditLog(filter: ...)): an account's events by action, by target and by actor,
-- each newest first, so a filtered page reads a few index entries instead of the account's whole log
-- (with 205,000 events: a rare action 92 ms -> 0.4 ms, one target 108 ms -> 0.4 ms, one actor 50 ms -> 1 ms).
-- The actor index is on the principal (the text before " (display prefix)"), as the filter compares it.
CREATE INDEX audit_events_action_idx ON audit_events (account_id, action, id DESC);
CREATE INDEX audit_events_target_idx ON audit_events (account_id, target_id, id DESC);
CREATE INDEX audit_events_principal_idx ON audit_events (account_id, split_part(actor, ' (', 1), id DESC);
