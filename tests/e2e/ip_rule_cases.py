"""Cases on which the IP restrictions page's decisions (static/settings/ip-rules.js) must agree with the
server's (tokengate.core.ip_rules): how CIDR and address texts parse, and which rule decides for an address.

Each case carries the server's answer; the page's module answers the same inputs in Chromium.
"""

from __future__ import annotations

import ipaddress
import random
from typing import Any

from tokengate.core.ip_rules import IpPolicy, IpRuleProblem, check_ip_rules, parse_address, parse_cidr

# Forms a person may type, including every corner of Python's parser the page has to follow.
TRICKY_TEXTS = [
    "",
    " ",
    "/",
    "10.0.0.0/",
    "10.0.0.0//8",
    "010.0.0.0/8",
    "10.0.0.0/08",
    "10.0.0.0/33",
    "10.0.0.0/-1",
    "10.0.0.0/+8",
    "10.0.0.0/255.0.0.0",
    "10.0.0.0/0.255.255.255",
    "10.0.0.0/255.0.255.0",
    "0.0.0.0/0.0.0.0",
    "1.2.3.4/255.255.255.255",
    "::",
    ":::",
    "::/0",
    "1::",
    "::1",
    "1:2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7::",
    "::2:3:4:5:6:7:8",
    "1::2::3",
    ":1::2",
    "1::2:",
    "::ffff:1.2.3.4",
    "::ffff:1.2.3.4/120",
    "1:2:3:4:5:6:1.2.3.4",
    "1:2:3:4:5:6:7:1.2.3.4",
    "::1.2.3",
    "2001:DB8::/32",
    "2001:db8::/129",
    "2001:db8::1/64",
    "fe80::/10",
    "1.2.3.4 ",
    "\t1.2.3.0/24\n",
    "\ufeff1.2.3.4",
    "\x1c1.2.3.4",
    "\u30001.2.3.4",
    "1.2.3.4/24",
    "1.2.3.4/32",
    "256.1.1.1",
    "1.2.3",
    "1.2.3.4.5",
    "\u0661.2.3.4",
    "0x1.2.3.4",
    "1.2.3.04",
    "12345::",
    "g::",
    "::12345",
    "0:0:0:0:0:0:0:0/128",
    "::/128",
    "10.0.0.0/24, 10.0.1.0/24",
]


def random_cidr_text(rng: random.Random) -> str:
    if rng.random() < 0.5:
        prefix = rng.randint(0, 32)
        network = ipaddress.ip_network((rng.getrandbits(32) >> (32 - prefix) << (32 - prefix) if prefix else 0, prefix))
        roll = rng.random()
        if roll < 0.2:
            return f"{network.network_address}/{network.netmask}"
        if roll < 0.3:
            return f"{network.network_address}/{network.hostmask}"
        if roll < 0.5:
            return f"{ipaddress.ip_address(rng.getrandbits(32))}/{prefix}"  # host bits set, mostly
        return str(network)
    prefix = rng.randint(0, 128)
    value = rng.getrandbits(128) >> (128 - prefix) << (128 - prefix) if prefix else 0
    if rng.random() < 0.3:
        value &= ((1 << 128) - (1 << 96)) | ((1 << 32) - 1)  # zeros in the middle, for "::"
    network = ipaddress.ip_network((value, prefix))
    text = str(network) if rng.random() < 0.6 else f"{network.network_address.exploded}/{prefix}"
    return text.upper() if rng.random() < 0.2 else text


def server_cidr(text: str) -> str | None:
    try:
        network = parse_cidr(text)
    except IpRuleProblem:
        return None
    return f"{network.version}/{network.prefixlen}/{int(network.network_address)}"


def server_address(text: str) -> str | None:
    address = parse_address(text)
    return None if address is None else f"{address.version}/{int(address)}"


def random_rules(rng: random.Random, near: int) -> list[dict[str, Any]]:
    rules = []
    for position in range(rng.randint(0, 4)):
        cidrs = []
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.7:  # IPv4 networks around the address, so that they match often
                prefix = rng.randint(8, 32)
                value = (near ^ (rng.getrandbits(32) >> rng.randint(8, 32))) >> (32 - prefix) << (32 - prefix)
            else:
                prefix = rng.randint(16, 128)
                value = ((0x20010DB8 << 96) | rng.getrandbits(32)) >> (128 - prefix) << (128 - prefix)
            cidrs.append(str(ipaddress.ip_network((value, prefix))))
        rules.append({"name": f"rule {position}", "type": rng.choice(["ALLOW", "DENY"]), "cidrs": cidrs})
    return rules


def decision_cases(rng: random.Random, count: int) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    while len(cases) < count:
        near = rng.getrandbits(32)
        rules = random_rules(rng, near)
        try:  # only rule sets the server would store
            policy = IpPolicy(check_ip_rules([(rule["name"], rule["type"], rule["cidrs"]) for rule in rules]))
        except IpRuleProblem:
            continue
        addresses = [
            str(ipaddress.ip_address(near)),
            str(ipaddress.ip_address(near ^ rng.getrandbits(8))),
            f"::ffff:{ipaddress.ip_address(near)}",
            str(ipaddress.ip_address((0x20010DB8 << 96) | rng.getrandbits(32))),
            None,
        ]
        for address in addresses:
            found = policy.match(address)
            match = None if found is None else [found.rule, found.type, str(found.cidr)]
            cases.append({"rules": rules, "address": address, "allowed": policy.allows(address), "match": match})
    return cases


def all_cases(seed: int = 17) -> dict[str, Any]:
    rng = random.Random(seed)
    texts = TRICKY_TEXTS + [random_cidr_text(rng) for _ in range(2000)]
    return {
        "cidrs": [[text, server_cidr(text)] for text in texts],
        # A scoped IPv6 address (fe80::1%eth0) is one the page cannot read: it then predicts nothing.
        "addresses": [[text, server_address(text)] for text in texts if "%" not in text],
        "decisions": decision_cases(rng, 1500),
    }
