"""The quota of usable service tokens per account, through the public mutations."""

from __future__ import annotations

import asyncio

from tests.api.service_token_calls import DELETE, create, created, listed, rotate
from tests.api.test_overload import serve
from tokengate.core.limits import Limits

QUOTA = Limits(max_tokens_per_account=3)


async def usable(server, account_id: str) -> int:
    return await server.pool.fetchval(
        "SELECT count(*) FROM tokens WHERE account_id = $1 AND kind = 'service' AND state = 'active' "
        "AND (expires_at IS NULL OR expires_at > now())",
        account_id,
    )


async def test_an_account_at_its_quota_cannot_create_or_rotate_more_until_it_deletes_one(database, tmp_path):
    async for server in serve(database, tmp_path, QUOTA):
        admin = await server.bootstrap()
        other = await server.bootstrap("Other")
        tokens = [await created(server, admin.token, f"t{i}") for i in range(3)]
        refused = await create(server, admin.token, "one too many")
        assert refused.codes == ["QUOTA_EXCEEDED"] and refused.data == {"createServiceToken": None}
        assert "quota (3)" in refused.errors[0]["message"]
        assert await usable(server, admin.account_id) == 3 and len(await listed(server, admin.token)) == 3
        audited = "SELECT count(*) FROM audit_events WHERE account_id = $1 AND action = 'service_token.created'"
        assert await server.pool.fetchval(audited, admin.account_id) == 3
        # Rotating adds a token too, unless the old one expires in the same change.
        assert (await rotate(server, admin.token, tokens[0].id)).codes == ["QUOTA_EXCEEDED"]
        assert (await rotate(server, admin.token, tokens[0].id, revoke=0)).errors == []
        assert await usable(server, admin.account_id) == 3
        # Another account has its own quota; deleting makes room.
        assert (await create(server, other.token, "theirs")).errors == []
        assert (await server.gql(DELETE, {"id": tokens[1].id}, token=admin.token)).errors == []
        assert (await create(server, admin.token, "room again")).errors == []
        metrics = (await server.get("/metrics"))[1]
        assert 'tokengate_refusals_total{limit="quota"} 2.0' in metrics


async def test_concurrent_creations_cannot_pass_the_quota_together(database, tmp_path):
    async for server in serve(database, tmp_path, QUOTA):
        admin = await server.bootstrap()
        replies = await asyncio.gather(*(create(server, admin.token, f"c{i}") for i in range(12)))
        codes = sorted(reply.codes[0] if reply.codes else "OK" for reply in replies)
        assert codes == ["OK"] * 3 + ["QUOTA_EXCEEDED"] * 9
        assert await usable(server, admin.account_id) == 3
