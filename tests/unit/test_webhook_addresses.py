"""The address rule and the URL rule against SSRF (webhook_addresses.py)."""

from __future__ import annotations

import socket

import pytest

from tokengate.core.errors import InvalidInput
from tokengate.core.webhook_addresses import address_refusal, checked_webhook_url, origin

REFUSED = [
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "172.16.5.4",
    "172.31.255.255",
    "192.168.0.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",  # noqa: S104
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.1",
    "198.18.0.1",
    "::",
    "::1",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "fec0::1",
    "2001:db8::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "64:ff9b::7f00:1",
    "2002:7f00:1::1",
    "2001:0:4136:e378:8000:63bf:f5ff:fffe",
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700::1", "2a00:1450:4001:80b::200e", "172.32.0.1", "11.0.0.1"]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address):
    assert address_refusal(address) is not None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address):
    assert address_refusal(address) is None


def test_a_scoped_ipv6_address_is_judged_without_its_zone():
    assert address_refusal("fe80::1%eth0") is not None


def test_what_is_not_an_address_is_refused():
    assert address_refusal("example.com") == "not an IP address"


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.1/x",
        "https://[::1]/x",
        "https://localhost/x",
        "https://LOCALHOST./x",
        "https://a.localhost/x",
        "http://hooks.example.com/x",
        "ftp://hooks.example.com/x",
        "https://user:pw@hooks.example.com/x",
        "https://hooks.example.com/x#frag",
        "https://hooks.example.com:0/x",
        "https://hooks.example.com:99999/x",
        "https:///x",
        "",
        "https://hooks.example.com/a b",
        "https://" + "a" * 2048 + ".com/",
    ],
)
def test_urls_refused_without_the_flag(url):
    with pytest.raises(InvalidInput):
        checked_webhook_url(url)


def test_the_flag_allows_private_hosts_and_plain_http_but_not_credentials():
    assert checked_webhook_url("http://127.0.0.1:9000/hook", allow_private=True) == "http://127.0.0.1:9000/hook"
    assert checked_webhook_url("https://10.0.0.1/x", allow_private=True) == "https://10.0.0.1/x"
    with pytest.raises(InvalidInput):
        checked_webhook_url("http://user:pw@127.0.0.1/", allow_private=True)
    with pytest.raises(InvalidInput):
        checked_webhook_url("ftp://127.0.0.1/", allow_private=True)


def test_a_public_url_is_kept_as_given():
    url = "https://hooks.example.com:8443/tokengate?team=sec"
    assert checked_webhook_url("  " + url + " ") == url


def test_the_origin_drops_the_path_that_may_hold_a_secret():
    assert origin("https://hooks.slack.example/services/T0/B0/XXXX?x=1") == "https://hooks.slack.example"
    assert origin("http://[::1]:9000/a") == "http://[::1]:9000"


# Other spellings of loopback and "this host": inet_aton (what resolvers and the HTTP client's connect use)
# reads each as an address of 127.0.0.0/8 or 0.0.0.0.
LOOPBACK_SPELLINGS = {
    "2130706433": "127.0.0.1",
    "0x7f.1": "127.0.0.1",
    "0177.0.0.1": "127.0.0.1",
    "127.1": "127.0.0.1",
    "127.0.1": "127.0.0.1",
    "0x7f000001": "127.0.0.1",
    "017700000001": "127.0.0.1",
    "0X7F.0.0.1": "127.0.0.1",
    "0": "0.0.0.0",  # noqa: S104
}


@pytest.mark.parametrize(("host", "address"), LOOPBACK_SPELLINGS.items())
def test_numeric_spellings_of_loopback_are_refused_when_saved(host, address):
    # Precondition: the resolver's parser reads this host as the loopback (or "this host") address.
    assert socket.inet_ntoa(socket.inet_aton(host)) == address
    with pytest.raises(InvalidInput, match="public address"):
        checked_webhook_url(f"https://{host}/x")
    with pytest.raises(InvalidInput, match="public address"):
        checked_webhook_url(f"https://{host}:8443/x")


@pytest.mark.parametrize("host", ["127.0.0.1.", "localhost.", "LocalHost.", "0x7f.1.", "\uff11\uff12\uff17.0.0.1"])
def test_a_trailing_dot_or_full_width_digits_do_not_hide_loopback(host):
    with pytest.raises(InvalidInput):
        checked_webhook_url(f"https://{host}/x")


@pytest.mark.parametrize("host", ["1.2.3.4.5", "256.1.1.1", "09.1.1.1", "4294967296", "127.0.0.1.."])
def test_a_host_ending_in_a_number_that_is_no_address_is_refused(host):
    with pytest.raises(InvalidInput, match="ends in a number"):
        checked_webhook_url(f"https://{host}/x")


@pytest.mark.parametrize("host", ["134744072", "0x8.0x8.0x8.0x8", "8.8.8.8.", "1e100.net", "hooks.example.com."])
def test_public_hosts_in_any_form_pass(host):
    assert checked_webhook_url(f"https://{host}/x") == f"https://{host}/x"


def test_the_operator_flag_still_allows_every_spelling():
    for host in LOOPBACK_SPELLINGS:
        assert checked_webhook_url(f"http://{host}:9000/x", allow_private=True) == f"http://{host}:9000/x"
