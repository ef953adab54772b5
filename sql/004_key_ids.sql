-- Which server key hashed each v2 token: a short public fingerprint of the derived key (tokens.key_id),
-- never the key. It lets `tokengate key-status` count the active tokens under each configured key before
-- an old key is removed. NULL for legacy tokens (argon2id, not keyed) and for v2 tokens hashed before this
-- column existed; those get it on their next successful use, when they are also re-hashed under the newest key.
ALTER TABLE tokens ADD COLUMN key_id text CHECK (key_id IS NULL OR format = 'v2');
