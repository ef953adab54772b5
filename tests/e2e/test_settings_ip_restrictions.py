"""The IP restrictions page in headless Chromium against a real tokengate: add, edit and remove rules, the
switch, the server's BAD_USER_INPUT messages next to the field they are about, a lock-out warning before a
save the server would refuse, and then the server's own refusal when the person saves anyway. Every change
is checked through the API as well; a refused one changed nothing.

The page predicts lock-outs with static/settings/ip-rules.js: that module answers a few thousand parsing and
decision cases exactly as tokengate.core.ip_rules does.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import Seeded, Server
from tests.e2e.ip_rule_cases import all_cases
from tests.e2e.settings_browser import (
    ARTIFACTS,
    BROWSER_ADDRESS,
    FROM_BROWSER,
    Browser,
    Page,
    assert_accessible,
    expect,
    open_settings,
    sign_in,
)

PATH = "/settings/ip-restrictions"
READ_RULES = "{ account { ipRestrictions { enabled rules { name type cidrs } } } }"
LOCKED_OUT = f"These rules would refuse your own address {BROWSER_ADDRESS}: allow it first, or save the rules disabled."


async def saved(server: Server, admin: Seeded) -> dict[str, Any]:
    reply = await server.gql(READ_RULES, token=admin.token, headers=FROM_BROWSER)
    assert reply.errors == [], reply.body
    return reply.data["account"]["ipRestrictions"]


def rule_row(page: Page, name: str):
    return page.locator("#rule-rows tr", has=page.get_by_text(name, exact=True))


async def fill_rule(page: Page, name: str, rule_type: str, cidrs: str):
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Name").fill(name)
    await dialog.get_by_role("radio", name=rule_type).check()
    await dialog.get_by_label("Networks").fill(cidrs)
    await dialog.get_by_role("button", name="Save rule").click()
    return dialog


async def test_rules_are_added_edited_removed_and_switched_on_and_off(behind_proxy: Server, browser: Browser):
    server = behind_proxy
    admin = await server.bootstrap("Acme", "ENTERPRISE", "admin@acme.example")
    page, watch = await open_settings(browser, server, PATH, extra_http_headers=FROM_BROWSER)
    await sign_in(page, admin.token, "IP restrictions")
    await expect(page.locator("#client-address")).to_have_text(BROWSER_ADDRESS)
    await expect(page.get_by_text("No rules yet")).to_be_visible()
    switch = page.get_by_role("switch", name="Enforce IP restrictions")
    await expect(switch).not_to_be_checked()

    # Add: the networks come back in canonical form.
    await page.get_by_role("button", name="+ Add rule").click()
    await expect(page.get_by_role("dialog", name="New rule").get_by_label("Name")).to_be_focused()
    dialog = await fill_rule(page, "office", "Allow", "203.0.113.0/24\n2001:DB8:17::/48")
    await expect(dialog).to_be_hidden()
    await expect(page.get_by_role("status")).to_have_text("Rule “office” saved.")
    await expect(rule_row(page, "office")).to_contain_text("2001:db8:17::/48")
    assert await saved(server, admin) == {
        "enabled": False,
        "rules": [{"name": "office", "type": "ALLOW", "cidrs": ["203.0.113.0/24", "2001:db8:17::/48"]}],
    }

    # Invalid networks: the server's message, next to the field, and nothing saved.
    before = await saved(server, admin)
    await page.get_by_role("button", name="+ Add rule").click()
    dialog = await fill_rule(page, "lab", "Deny", "10.0.0.5/24")
    networks = dialog.get_by_label("Networks")
    await expect(dialog.locator("#rule-cidrs-error")).to_have_text(
        "Rule 'lab': 10.0.0.5/24 has host bits set: write 10.0.0.0/24 for the network or 10.0.0.5/32 for one address."
    )
    await expect(networks).to_have_attribute("aria-invalid", "true")
    await expect(networks).to_be_focused()
    await expect(networks).to_have_accessible_description(
        "One per line, in CIDR form such as 203.0.113.0/24 or 2001:db8::/32; a bare address means that one address. "
        "Rule 'lab': 10.0.0.5/24 has host bits set: write 10.0.0.0/24 for the network or 10.0.0.5/32 for one address."
    )
    await networks.fill("10.0.0.0/24\nnot-a-network")
    await dialog.get_by_role("button", name="Save rule").click()
    await expect(dialog.locator("#rule-cidrs-error")).to_have_text(
        "Rule 'lab': 'not-a-network' is not a CIDR such as 203.0.113.0/24 or 2001:db8::/32."
    )
    await networks.fill("203.0.113.0/24")  # already in the ALLOW rule
    await dialog.get_by_role("button", name="Save rule").click()
    await expect(dialog.locator("#rule-cidrs-error")).to_have_text(
        "203.0.113.0/24 is in the ALLOW rule 'office' and in the DENY rule 'lab'."
    )
    await page.screenshot(path=str(ARTIFACTS / "settings-ip-restrictions-invalid-cidr.png"))
    await assert_accessible(page, "ip-restrictions-rule-form-error")
    assert await saved(server, admin) == before
    await networks.fill("10.0.0.0/24")
    await dialog.get_by_role("button", name="Save rule").click()
    await expect(dialog).to_be_hidden()
    await expect(rule_row(page, "lab")).to_contain_text("DENY")

    # Edit: a new name and one more network ("Add my address" puts the caller's own in).
    await rule_row(page, "office").get_by_role("button", name="Edit office").click()
    dialog = page.get_by_role("dialog", name="Edit “office”")
    await expect(dialog.get_by_label("Networks")).to_have_value("203.0.113.0/24\n2001:db8:17::/48")
    await expect(dialog.locator("#rule-cidrs-error")).to_have_text("")  # the last form's error is gone
    await expect(dialog.get_by_label("Networks")).to_have_attribute("aria-invalid", "false")
    await dialog.get_by_label("Name").fill("head office")
    await dialog.get_by_role("button", name=f"Add my address ({BROWSER_ADDRESS})").click()
    await expect(dialog.get_by_label("Networks")).to_have_value(f"203.0.113.0/24\n2001:db8:17::/48\n{BROWSER_ADDRESS}")
    await dialog.get_by_role("button", name="Save rule").click()
    await expect(dialog).to_be_hidden()
    await expect(rule_row(page, "head office")).to_contain_text(f"{BROWSER_ADDRESS}/32")
    assert [rule["name"] for rule in (await saved(server, admin))["rules"]] == ["head office", "lab"]

    # The switch, from the keyboard: on, and the address is said to be allowed by the most specific rule.
    await switch.focus()
    await page.keyboard.press("Space")
    await expect(page.get_by_role("status")).to_have_text("IP restrictions are on.")
    await expect(switch).to_be_checked()
    await expect(page.locator("#address-verdict")).to_have_text(
        f"Restrictions are on: your address is allowed by the ALLOW rule “head office” ({BROWSER_ADDRESS}/32)."
    )
    assert (await saved(server, admin))["enabled"] is True

    # Remove, after a confirmation that names the rule.
    await rule_row(page, "lab").get_by_role("button", name="Remove lab").click()
    confirm = page.get_by_role("dialog", name="Remove rule “lab”?")
    await expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    await confirm.get_by_role("button", name="Remove rule").click()
    await expect(confirm).to_be_hidden()
    await expect(rule_row(page, "lab")).to_have_count(0)
    await expect(page.get_by_role("status")).to_have_text("Rule “lab” removed.")
    assert [rule["name"] for rule in (await saved(server, admin))["rules"]] == ["head office"]

    await switch.click()
    await expect(switch).not_to_be_checked()
    await expect(page.get_by_role("status")).to_have_text("IP restrictions are off.")
    assert (await saved(server, admin))["enabled"] is False
    assert watch.problems == []
    await page.context.close()


async def test_a_lock_out_is_warned_about_and_then_refused_by_the_server(behind_proxy: Server, browser: Browser):
    server = behind_proxy
    admin = await server.bootstrap("Acme", "ENTERPRISE", "admin@acme.example")
    rules = [{"name": "office", "type": "ALLOW", "cidrs": ["203.0.113.0/24", "198.51.100.0/24"]}]
    reply = await server.gql(
        "mutation($rules: [IpRuleInput!]!) { setIpRestrictions(enabled: true, rules: $rules) { enabled } }",
        {"rules": rules},
        token=admin.token,
        headers=FROM_BROWSER,
    )
    assert reply.errors == [], reply.body
    page, watch = await open_settings(browser, server, PATH, extra_http_headers=FROM_BROWSER)
    await sign_in(page, admin.token, "IP restrictions")
    before = await saved(server, admin)
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.post_data or "") if "/graphql" in request.url else None)

    # Taking the caller's network out of the only ALLOW rule would refuse the caller: warned first.
    await rule_row(page, "office").get_by_role("button", name="Edit office").click()
    dialog = page.get_by_role("dialog", name="Edit “office”")
    await dialog.get_by_label("Networks").fill("198.51.100.0/24")
    await dialog.get_by_role("button", name="Save rule").click()
    warning = page.get_by_role("dialog", name="This would lock you out")
    await expect(warning).to_be_visible()
    await expect(warning).to_contain_text(
        f"Your address {BROWSER_ADDRESS} would be refused: no rule matches it, and an address no rule matches is "
        "refused while an ALLOW rule exists."
    )
    await expect(warning.get_by_role("button", name="Go back")).to_be_focused()
    await page.screenshot(path=str(ARTIFACTS / "settings-ip-restrictions-lockout-warning.png"))
    await page.set_viewport_size({"width": 360, "height": 800})
    await page.screenshot(path=str(ARTIFACTS / "settings-ip-restrictions-lockout-warning-360.png"))
    await page.set_viewport_size({"width": 1280, "height": 900})
    await assert_accessible(page, "ip-restrictions-lockout-warning")
    assert not any("setIpRestrictions" in body for body in sent), "nothing is sent before the person decides"

    # Go back: nothing was sent, the form is still there.
    await warning.get_by_role("button", name="Go back").click()
    await expect(warning).to_be_hidden()
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_role("button", name="Save rule")).to_be_focused()
    assert not any("setIpRestrictions" in body for body in sent)

    # Save anyway: the server refuses, and its message is shown.
    await dialog.get_by_role("button", name="Save rule").click()
    await warning.get_by_role("button", name="Save anyway").click()
    await expect(dialog.locator("#rule-form-error")).to_have_text(LOCKED_OUT)
    assert sum("setIpRestrictions" in body for body in sent) == 1
    await page.screenshot(path=str(ARTIFACTS / "settings-ip-restrictions-lockout-refused.png"))
    assert await saved(server, admin) == before
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()

    # A DENY for the caller's own address is more specific than the ALLOW network: warned, naming the rule.
    await page.get_by_role("button", name="+ Add rule").click()
    dialog = await fill_rule(page, "me", "Deny", BROWSER_ADDRESS)
    await expect(warning).to_contain_text(
        f"Your address {BROWSER_ADDRESS} would be refused by the DENY rule “me” ({BROWSER_ADDRESS})."
    )
    await page.keyboard.press("Escape")  # Escape is "go back" too
    await expect(warning).to_be_hidden()
    await dialog.get_by_role("button", name="Cancel").click()

    # Switching off is never a lock-out; switching back on with the caller allowed is accepted.
    switch = page.get_by_role("switch", name="Enforce IP restrictions")
    await switch.click()
    await expect(switch).not_to_be_checked()
    await expect(page.get_by_role("dialog", name="This would lock you out")).to_be_hidden()
    await switch.click()
    await expect(switch).to_be_checked()
    assert await saved(server, admin) == before

    # With the switch off, the same edit is saved without a warning; switching on is then the lock-out.
    await switch.click()
    await expect(switch).not_to_be_checked()
    await rule_row(page, "office").get_by_role("button", name="Edit office").click()
    await dialog_of(page, "Edit “office”").get_by_label("Networks").fill("198.51.100.0/24")
    await dialog_of(page, "Edit “office”").get_by_role("button", name="Save rule").click()
    await expect(page.get_by_role("status")).to_have_text("Rule “office” saved.")
    await expect(page.locator("#address-verdict")).to_contain_text(
        "Turned on, these rules would find your address refused"
    )
    await switch.click()
    await expect(warning).to_be_visible()
    await warning.get_by_role("button", name="Save anyway").click()
    await expect(page.locator("#page-alert")).to_have_text(LOCKED_OUT)
    await expect(switch).not_to_be_checked()
    assert (await saved(server, admin))["enabled"] is False
    assert watch.problems == []
    await page.context.close()


def dialog_of(page: Page, name: str):
    return page.get_by_role("dialog", name=name)


async def test_the_page_decides_as_the_server_does(server: Server, browser: Browser):
    cases = all_cases()
    page, _ = await open_settings(browser, server, PATH)
    disagreements = await page.evaluate(
        """async (cases) => {
          const m = await import('/static/settings/ip-rules.js');
          const found = [];
          for (const [text, expected] of cases.cidrs) {
            const got = m.parseCidr(text);
            const shown = got === null ? null : `${got.version}/${got.prefix}/${got.value}`;
            if (shown !== expected) found.push(['cidr', text, shown, expected]);
          }
          for (const [text, expected] of cases.addresses) {
            const got = m.parseAddress(text);
            const shown = got === null ? null : `${got.version}/${got.value}`;
            if (shown !== expected) found.push(['address', text, shown, expected]);
          }
          for (const c of cases.decisions) {
            const d = m.decide(c.rules, c.address);
            const match = d.match ? [d.match.rule, d.match.type, d.match.cidr] : null;
            if (!d.known || d.allowed !== c.allowed || JSON.stringify(match) !== JSON.stringify(c.match)) {
              found.push(['decision', c, d]);
            }
            const refused = m.lockOut(true, c.rules, c.address);
            if ((refused !== null) === c.allowed || m.lockOut(false, c.rules, c.address) !== null) {
              found.push(['lock-out', c, refused]);
            }
          }
          return found;
        }""",
        cases,
    )
    assert len(cases["cidrs"]) > 2000 and len(cases["decisions"]) >= 1500
    assert sum(1 for _, expected in cases["cidrs"] if expected is None) > 150  # refusals are covered too
    assert sum(1 for case in cases["decisions"] if case["match"] is not None) > 500
    assert sum(1 for case in cases["decisions"] if not case["allowed"]) > 300
    assert disagreements == []
    await page.context.close()
