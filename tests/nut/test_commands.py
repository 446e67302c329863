"""Every command of NUT network protocol 1.3, its replies and its errors (as upsd answers)."""

from __future__ import annotations

import pytest

from custom_components.ecoflow_power.nut.commands import CommandHandler, Session

from .fakes import USERS, FakeBackend


class Client:
    """One connection's session against a handler shared with other sessions."""

    def __init__(self, handler: CommandHandler, sessions: list[Session], address: str) -> None:
        self.handler = handler
        self.session = Session(address=address)
        sessions.append(self.session)

    def __call__(self, line: str) -> list[str]:
        return self.handler.handle_line(self.session, line)

    def login(self, ups: str = "delta", user: str = "monitor", pw: str = '"s3cret pass"') -> None:
        assert self(f"USERNAME {user}") == ["OK"]
        assert self(f"PASSWORD {pw}") == ["OK"]
        assert self(f"LOGIN {ups}") == ["OK"]


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def sessions() -> list[Session]:
    return []


@pytest.fixture
def handler(backend: FakeBackend, sessions: list[Session]) -> CommandHandler:
    return CommandHandler(backend, USERS, lambda: sessions, version="0.1.0")


@pytest.fixture
def client(handler: CommandHandler, sessions: list[Session]) -> Client:
    return Client(handler, sessions, "192.0.2.10")


def test_version_help_and_protocol_version(client: Client) -> None:
    assert client("VER")[0].startswith("Network UPS Tools upsd-compatible server")
    assert client("NETVER") == ["1.3"]
    assert client("protver") == ["1.3"]
    assert client("HELP") == [
        "Commands: HELP VER PROTVER GET LIST SET INSTCMD LOGIN LOGOUT USERNAME PASSWORD STARTTLS"
    ]
    for line in ("VER x", "NETVER x", "HELP me"):
        assert client(line) == ["ERR INVALID-ARGUMENT"]


def test_unknown_and_malformed_commands(client: Client) -> None:
    assert client("REQ ups ups.status") == ["ERR UNKNOWN-COMMAND"]
    assert client("LISTVARS") == ["ERR UNKNOWN-COMMAND"]
    assert client('GET VAR "open') == ["ERR INVALID-ARGUMENT"]
    assert client(" ".join(["LIST"] * 17)) == ["ERR INVALID-ARGUMENT"]
    assert client("") == []
    assert client("# nothing") == []


def test_starttls_is_not_configured_so_clients_carry_on_in_plain_text(client: Client) -> None:
    assert client("STARTTLS") == ["ERR FEATURE-NOT-CONFIGURED"]


def test_list_ups_includes_aliases_with_escaped_descriptions(client: Client) -> None:
    assert client("LIST UPS") == [
        "BEGIN LIST UPS",
        'UPS delta "Rack \\\\ DELTA 2"',
        'UPS ups "Rack \\\\ DELTA 2"',
        "END LIST UPS",
    ]


def test_list_var_sorted_and_quoted(client: Client) -> None:
    assert client("LIST VAR delta") == [
        "BEGIN LIST VAR delta",
        'VAR delta battery.charge "87"',
        'VAR delta device.model "DELTA \\"2\\""',
        'VAR delta driver.name "ecoflow_power"',
        'VAR delta ups.status "OL CHRG"',
        "END LIST VAR delta",
    ]


def test_list_rw_cmd_enum_range_are_empty_lists(client: Client) -> None:
    assert client("LIST RW delta") == ["BEGIN LIST RW delta", "END LIST RW delta"]
    assert client("LIST CMD delta") == ["BEGIN LIST CMD delta", "END LIST CMD delta"]
    assert client("LIST ENUM delta ups.status") == [
        "BEGIN LIST ENUM delta ups.status",
        "END LIST ENUM delta ups.status",
    ]
    assert client("LIST RANGE delta battery.charge") == [
        "BEGIN LIST RANGE delta battery.charge",
        "END LIST RANGE delta battery.charge",
    ]
    assert client("LIST ENUM delta nope") == ["ERR VAR-NOT-SUPPORTED"]
    assert client("LIST RANGE delta nope") == ["ERR VAR-NOT-SUPPORTED"]


@pytest.mark.parametrize(
    "line",
    ["LIST", "LIST VAR", "LIST ENUM delta", "LIST RANGE delta", "LIST BOGUS delta x", "LIST X y"],
)
def test_list_with_missing_or_bad_arguments(client: Client, line: str) -> None:
    assert client(line) == ["ERR INVALID-ARGUMENT"]


@pytest.mark.parametrize(
    "line",
    ["LIST VAR nope", "LIST RW nope", "LIST CMD nope", "LIST CLIENT nope", "LIST ENUM nope x"],
)
def test_list_of_an_unknown_ups(client: Client, line: str) -> None:
    assert client(line) == ["ERR UNKNOWN-UPS"]


def test_get_var_type_desc_cmddesc_upsdesc(client: Client) -> None:
    assert client("GET VAR delta ups.status") == ['VAR delta ups.status "OL CHRG"']
    assert client("GET VAR delta nope") == ["ERR VAR-NOT-SUPPORTED"]
    assert client("GET TYPE delta battery.charge") == ["TYPE delta battery.charge NUMBER"]
    assert client("GET TYPE delta ups.status") == ["TYPE delta ups.status STRING:7"]
    assert client("GET TYPE delta nope") == ["ERR VAR-NOT-SUPPORTED"]
    assert client("GET DESC delta ups.status") == ['DESC delta ups.status "UPS status"']
    assert client("GET DESC delta x.y") == ['DESC delta x.y "Description unavailable"']
    assert client("GET CMDDESC delta load.off") == [
        'CMDDESC delta load.off "Description unavailable"'
    ]
    assert client("GET UPSDESC delta") == ['UPSDESC delta "Rack \\\\ DELTA 2"']


def test_server_variables_ignore_the_ups_name(client: Client) -> None:
    assert client("GET VAR anything server.version") == ['VAR anything server.version "0.1.0"']
    assert client("GET VAR delta server.info")[0].startswith('VAR delta server.info "Network')
    assert client("GET VAR delta server.nope") == ["ERR VAR-NOT-SUPPORTED"]


@pytest.mark.parametrize(
    "line",
    [
        "GET",
        "GET VAR",
        "GET VAR delta",
        "GET NUMLOGINS",
        "GET BOGUS delta x",
        "GET TYPE delta",
        'GET VAR delta "a b"',
    ],
)
def test_get_with_missing_or_bad_arguments(client: Client, line: str) -> None:
    assert client(line) == ["ERR INVALID-ARGUMENT"]


@pytest.mark.parametrize(
    "line",
    [
        "GET VAR nope ups.status",
        "GET TYPE nope x",
        "GET DESC nope x",
        "GET CMDDESC nope x",
        "GET UPSDESC nope",
        "GET NUMLOGINS nope",
        'GET VAR "a b" ups.status',
    ],
)
def test_get_of_an_unknown_ups(client: Client, line: str) -> None:
    assert client(line) == ["ERR UNKNOWN-UPS"]


def test_nothing_known_answers_data_stale_but_the_ups_stays_listed(
    client: Client, backend: FakeBackend
) -> None:
    backend.set_variables("delta", None)
    for line in (
        "GET VAR delta ups.status",
        "GET TYPE delta ups.status",
        "GET DESC delta ups.status",
        "GET NUMLOGINS delta",
        "LIST VAR delta",
        "LIST RW delta",
        "LIST CMD delta",
        "LIST ENUM delta ups.status",
    ):
        assert client(line) == ["ERR DATA-STALE"], line
    assert "UPS delta" in client("LIST UPS")[1]
    assert client("GET UPSDESC delta")[0].startswith("UPSDESC delta")
    assert client("LIST CLIENT delta") == ["BEGIN LIST CLIENT delta", "END LIST CLIENT delta"]
    client.login()  # upsmon can still log in and keeps polling


def test_login_counts_and_lists_clients_per_ups_name(
    handler: CommandHandler, sessions: list[Session]
) -> None:
    nas = Client(handler, sessions, "192.0.2.20")
    box = Client(handler, sessions, "192.0.2.21")
    watcher = Client(handler, sessions, "192.0.2.22")
    nas.login("ups", user="nas", pw="pw2")
    box.login("delta")
    assert watcher("GET NUMLOGINS ups") == ["NUMLOGINS ups 1"]
    assert watcher("GET NUMLOGINS delta") == ["NUMLOGINS delta 1"]
    assert watcher("LIST CLIENT delta") == [
        "BEGIN LIST CLIENT delta",
        "CLIENT delta 192.0.2.21",
        "END LIST CLIENT delta",
    ]


def test_username_and_password_once_each(client: Client) -> None:
    assert client("USERNAME") == ["ERR INVALID-ARGUMENT"]
    assert client("USERNAME a b") == ["ERR INVALID-ARGUMENT"]
    assert client("USERNAME monitor") == ["OK"]
    assert client("USERNAME other") == ["ERR ALREADY-SET-USERNAME"]
    assert client("PASSWORD") == ["ERR INVALID-ARGUMENT"]
    assert client('PASSWORD "s3cret pass"') == ["OK"]
    assert client("PASSWORD again") == ["ERR ALREADY-SET-PASSWORD"]


@pytest.mark.parametrize(
    "command",
    [
        "LOGIN delta",
        "PRIMARY delta",
        "MASTER delta",
        "FSD delta",
        "SET VAR delta x y",
        "INSTCMD delta load.off",
    ],
)
def test_commands_needing_a_user_ask_for_username_then_password(
    client: Client, command: str
) -> None:
    assert client(command) == ["ERR USERNAME-REQUIRED"]
    client("USERNAME monitor")
    assert client(command) == ["ERR PASSWORD-REQUIRED"]


def test_login_errors(client: Client, handler: CommandHandler, sessions: list[Session]) -> None:
    client("USERNAME monitor")
    client("PASSWORD wrong")
    assert client("LOGIN nope") == ["ERR UNKNOWN-UPS"]
    assert client("LOGIN delta") == ["ERR ACCESS-DENIED"]
    assert client("LOGIN") == ["ERR INVALID-ARGUMENT"]
    stranger = Client(handler, sessions, "192.0.2.30")
    stranger("USERNAME nobody")
    stranger('PASSWORD "s3cret pass"')
    assert stranger("LOGIN delta") == ["ERR ACCESS-DENIED"]
    good = Client(handler, sessions, "192.0.2.31")
    good.login()
    assert good("LOGIN delta") == ["ERR ALREADY-LOGGED-IN"]
    assert good("LOGIN ups") == ["ERR ALREADY-LOGGED-IN"]


def test_the_user_table_never_accepts_a_missing_username_or_password() -> None:
    # The handler asks for both before LOGIN; the table fails closed on its own too.
    assert USERS.check("monitor", "s3cret pass") is True
    assert USERS.check(None, "s3cret pass") is False
    assert USERS.check("monitor", None) is False
    assert USERS.check(None, None) is False


def test_fsd_and_primary_come_only_from_the_policy(client: Client) -> None:
    client.login()
    assert client("FSD delta") == ["ERR ACCESS-DENIED"]
    assert client("PRIMARY delta") == ["ERR ACCESS-DENIED"]
    assert client("MASTER delta") == ["ERR ACCESS-DENIED"]
    assert client("FSD nope") == ["ERR UNKNOWN-UPS"]
    assert client("PRIMARY nope") == ["ERR UNKNOWN-UPS"]
    assert client("FSD") == ["ERR INVALID-ARGUMENT"]
    assert client("MASTER a b") == ["ERR INVALID-ARGUMENT"]
    assert client("GET VAR delta ups.status") == ['VAR delta ups.status "OL CHRG"']


def test_set_and_instcmd_are_refused(client: Client) -> None:
    client.login()
    assert client('SET VAR delta ups.id "x"') == ["ERR ACCESS-DENIED"]
    assert client("SET VAR nope ups.id x") == ["ERR UNKNOWN-UPS"]
    assert client("SET VAR delta ups.id") == ["ERR INVALID-ARGUMENT"]
    assert client("SET") == ["ERR INVALID-ARGUMENT"]
    assert client("SET BOGUS x") == ["ERR INVALID-ARGUMENT"]
    assert client("INSTCMD delta load.off") == ["ERR CMD-NOT-SUPPORTED"]
    assert client("INSTCMD delta load.off 10") == ["ERR CMD-NOT-SUPPORTED"]
    assert client("INSTCMD nope load.off") == ["ERR UNKNOWN-UPS"]
    assert client("INSTCMD delta") == ["ERR INVALID-ARGUMENT"]


def test_set_and_instcmd_on_stale_data(client: Client, backend: FakeBackend) -> None:
    client.login()
    backend.set_variables("delta", None)
    assert client("SET VAR delta ups.id x") == ["ERR DATA-STALE"]
    assert client("INSTCMD delta load.off") == ["ERR DATA-STALE"]


def test_tracking_switch(client: Client) -> None:
    assert client("GET TRACKING") == ["OFF"]
    assert client("GET TRACKING 1bd31808") == ["ERR FEATURE-NOT-CONFIGURED"]
    client.login()
    assert client("SET TRACKING ON") == ["OK"]
    assert client("GET TRACKING") == ["ON"]
    assert client("GET TRACKING 1bd31808") == ["ERR UNKNOWN"]
    assert client("SET TRACKING maybe") == ["ERR INVALID-ARGUMENT"]
    assert client("SET TRACKING OFF") == ["OK"]


def test_logout_says_goodbye_and_marks_the_session(client: Client) -> None:
    assert client("LOGOUT now") == ["ERR INVALID-ARGUMENT"]
    assert client("LOGOUT") == ["OK Goodbye"]
    assert client.session.logged_out


def test_commands_and_names_are_case_insensitive_like_upsd(client: Client) -> None:
    assert client("get var delta ups.status") == ['VAR delta ups.status "OL CHRG"']
    assert client("GET VAR DELTA UPS.STATUS") == ['VAR DELTA UPS.STATUS "OL CHRG"']
    client.login("UPS")
    assert client("LIST CLIENT Ups") == [
        "BEGIN LIST CLIENT Ups",
        "CLIENT ups 192.0.2.10",
        "END LIST CLIENT Ups",
    ]
