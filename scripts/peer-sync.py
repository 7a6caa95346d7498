#!/usr/bin/env python3
"""The peer of `gangway bench sync --peer`: the same full sync done the way a straightforward,
competent integrator would with Microsoft's Graph SDK for Python (msgraph-sdk, with
azure-identity for the client-credentials token) and psycopg 3. It walks a whole
/v1.0/users/delta round with the properties Gangway replicates, then a whole /v1.0/groups/delta
round with their members (merging each group's members@delta slices as Graph asks), and, per
page, in one transaction, upserts the page's users (or groups and their memberships) into its
own tables with executemany (which psycopg pipelines) and saves the chain's next or delta link.
Only configuration points the SDK at the emulator: the credential's authority, the request
adapter's base URL, the allowed host and the trusted CA.

The tables live in the schema `peer` of the database given, made afresh before the clock
starts: users, groups, group_members and sync_state. The client secret comes from the
environment (AZURE_CLIENT_SECRET), never the command line; the database URL from
--database-url or DATABASE_URL.

Prints one JSON line: {"users": N, "groups": G, "memberships": M, "pages": P, "seconds": S},
the rows in its tables at the end, the delta pages of both rounds, and the seconds from the
first Graph request (the token's included) to the last commit; the SDK's model modules are
imported before.
Exit codes: 0 ok, 1 a Graph or token failure, 2 bad arguments, 3 the SDK or psycopg is not
installed, 4 a database failure.
"""
import argparse
import asyncio
import json
import os
import sys
import time
from urllib.parse import urlparse

try:
    import httpx
    import psycopg
    from azure.identity.aio import ClientSecretCredential
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from msgraph import GraphRequestAdapter, GraphServiceClient
    from msgraph.generated.groups.delta.delta_request_builder import (
        DeltaRequestBuilder as GroupsDelta,
    )
    from msgraph.generated.models.group import Group
    from msgraph.generated.models.user import User
    from msgraph.generated.users.delta.delta_request_builder import (
        DeltaRequestBuilder as UsersDelta,
    )
    from msgraph_core import GraphClientFactory
except ImportError as err:  # `gangway bench sync --peer` turns this into a clear skip
    print(
        f"A Python library the peer needs is missing ({err}); install them with: "
        "pip install msgraph-sdk azure-identity 'psycopg[binary]'",
        file=sys.stderr,
    )
    sys.exit(3)

GRAPH_DEFAULT = "https://graph.microsoft.com/.default"

# What Gangway asks for (src/directory/store.rs, Resource::first_link).
USER_PROPERTIES = [
    "userPrincipalName",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "businessPhones",
    "mobilePhone",
    "jobTitle",
    "department",
    "accountEnabled",
]
GROUP_PROPERTIES = [
    "displayName",
    "description",
    "mail",
    "mailEnabled",
    "securityEnabled",
    "members",
]

SCHEMA = """
drop schema if exists peer cascade;
create schema peer;
create table peer.users (
    id uuid primary key,
    user_principal_name text,
    display_name text,
    given_name text,
    surname text,
    mail text,
    business_phones text[],
    mobile_phone text,
    job_title text,
    department text,
    account_enabled boolean,
    synced_at timestamptz not null default now()
);
create table peer.groups (
    id uuid primary key,
    display_name text,
    description text,
    mail text,
    mail_enabled boolean,
    security_enabled boolean,
    synced_at timestamptz not null default now()
);
create table peer.group_members (
    group_id uuid not null references peer.groups (id) on delete cascade,
    member_id uuid not null,
    member_type text,
    primary key (group_id, member_id)
);
create table peer.sync_state (
    resource text primary key,
    next_link text,
    delta_link text,
    updated_at timestamptz not null default now()
);
"""

UPSERT_USER = """
insert into peer.users (id, user_principal_name, display_name, given_name, surname, mail,
                        business_phones, mobile_phone, job_title, department, account_enabled)
values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
on conflict (id) do update set
    user_principal_name = excluded.user_principal_name, display_name = excluded.display_name,
    given_name = excluded.given_name, surname = excluded.surname, mail = excluded.mail,
    business_phones = excluded.business_phones, mobile_phone = excluded.mobile_phone,
    job_title = excluded.job_title, department = excluded.department,
    account_enabled = excluded.account_enabled, synced_at = now()
"""
UPSERT_GROUP = """
insert into peer.groups (id, display_name, description, mail, mail_enabled, security_enabled)
values (%s, %s, %s, %s, %s, %s)
on conflict (id) do update set
    display_name = excluded.display_name, description = excluded.description,
    mail = excluded.mail, mail_enabled = excluded.mail_enabled,
    security_enabled = excluded.security_enabled, synced_at = now()
"""
UPSERT_MEMBER = """
insert into peer.group_members (group_id, member_id, member_type) values (%s, %s, %s)
on conflict (group_id, member_id) do update set member_type = excluded.member_type
"""
DELETE_USER = "delete from peer.users where id = %s"
DELETE_GROUP = "delete from peer.groups where id = %s"
DELETE_MEMBER = "delete from peer.group_members where group_id = %s and member_id = %s"
SAVE_LINK = """
insert into peer.sync_state (resource, next_link, delta_link) values (%s, %s, %s)
on conflict (resource) do update set
    next_link = excluded.next_link, delta_link = excluded.delta_link, updated_at = now()
"""
COUNTS = """
select (select count(*) from peer.users), (select count(*) from peer.groups),
       (select count(*) from peer.group_members)
"""


class GraphFailure(Exception):
    """Graph or the token endpoint failed (exit 1)."""


def graph_client(args) -> tuple:
    """The SDK's client for the tenant, and the credential to close at the end."""
    credential = ClientSecretCredential(
        args.tenant,
        args.client_id,
        os.environ["AZURE_CLIENT_SECRET"],
        authority=args.authority,
        disable_instance_discovery=True,
        connection_verify=args.ca_file,
    )
    auth = AzureIdentityAuthenticationProvider(
        credential, scopes=[GRAPH_DEFAULT], allowed_hosts=[urlparse(args.graph).hostname]
    )
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(verify=args.ca_file, timeout=60)
    )
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = f"{args.graph}/v1.0"
    return GraphServiceClient(request_adapter=adapter), credential


def removed(item) -> bool:
    """Whether a delta item says the object left (the SDK keeps `@removed` aside)."""
    return "@removed" in (item.additional_data or {})


async def save_link(cur, resource: str, page) -> None:
    await cur.execute(SAVE_LINK, (resource, page.odata_next_link, page.odata_delta_link))


async def store_users(conn, page) -> None:
    """One page of users, and where the chain stands, in one transaction."""
    users = page.value or []
    gone = [(u.id,) for u in users if removed(u)]
    rows = [
        (
            u.id,
            u.user_principal_name,
            u.display_name,
            u.given_name,
            u.surname,
            u.mail,
            u.business_phones,
            u.mobile_phone,
            u.job_title,
            u.department,
            u.account_enabled,
        )
        for u in users
        if not removed(u)
    ]
    async with conn.transaction(), conn.cursor() as cur:
        await cur.executemany(UPSERT_USER, rows)
        await cur.executemany(DELETE_USER, gone)
        await save_link(cur, "users", page)


async def store_groups(conn, page) -> None:
    """One page of groups with its slices of their members, and where the chain stands, in
    one transaction; a group may come again on a later page with more members."""
    groups = page.value or []
    gone = [(g.id,) for g in groups if removed(g)]
    rows = [
        (g.id, g.display_name, g.description, g.mail, g.mail_enabled, g.security_enabled)
        for g in groups
        if not removed(g)
    ]
    joined, left = [], []
    for group in groups:
        if removed(group):
            continue
        for member in (group.additional_data or {}).get("members@delta", []):
            # The SDK reads a GUID-shaped string in additional_data as a UUID.
            pair = (group.id, str(member["id"]))
            if "@removed" in member:
                left.append(pair)
            else:
                joined.append(pair + (member.get("@odata.type"),))
    async with conn.transaction(), conn.cursor() as cur:
        await cur.executemany(UPSERT_GROUP, rows)
        await cur.executemany(UPSERT_MEMBER, joined)
        await cur.executemany(DELETE_MEMBER, left)
        await cur.executemany(DELETE_GROUP, gone)
        await save_link(cur, "groups", page)


async def walk(conn, builder, config, store) -> int:
    """A whole delta round from `builder`, each page stored as it comes; the pages."""
    page = await builder.get(request_configuration=config)
    pages = 1
    await store(conn, page)
    while page.odata_next_link:
        page = await builder.with_url(page.odata_next_link).get()
        pages += 1
        await store(conn, page)
    return pages


async def run(args) -> dict:
    conn = await psycopg.AsyncConnection.connect(args.database_url, autocommit=True)
    try:
        await conn.execute(SCHEMA)
        client, credential = graph_client(args)
        # The SDK imports its thousand-odd model modules when it reads a first object (seconds):
        # done before the clock, as a long-running integrator pays it once, not per sync.
        User().get_field_deserializers()
        Group().get_field_deserializers()
        started = time.perf_counter()
        try:
            users = RequestConfiguration(
                query_parameters=UsersDelta.DeltaRequestBuilderGetQueryParameters(
                    select=USER_PROPERTIES
                )
            )
            groups = RequestConfiguration(
                query_parameters=GroupsDelta.DeltaRequestBuilderGetQueryParameters(
                    select=GROUP_PROPERTIES
                )
            )
            pages = await walk(conn, client.users.delta, users, store_users)
            pages += await walk(conn, client.groups.delta, groups, store_groups)
        except psycopg.Error:
            raise
        except Exception as err:  # whatever the SDK raised: Graph or the token failed
            raise GraphFailure(f"{type(err).__name__}: {err}") from err
        finally:
            await credential.close()
        seconds = time.perf_counter() - started
        cur = await conn.execute(COUNTS)
        users, groups, memberships = await cur.fetchone()
    finally:
        await conn.close()
    return {
        "users": users,
        "groups": groups,
        "memberships": memberships,
        "pages": pages,
        "seconds": round(seconds, 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--authority", required=True, help="https://localhost:PORT")
    parser.add_argument("--tenant", required=True, help="tenant id")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--ca-file", required=True, help="PEM of the emulator's CA")
    parser.add_argument("--graph", required=True, help="Graph base URL (same as the emulator's)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="the Postgres database to write to [default: DATABASE_URL]",
    )
    args = parser.parse_args()
    if not args.database_url or not os.environ.get("AZURE_CLIENT_SECRET"):
        parser.error("AZURE_CLIENT_SECRET and --database-url (or DATABASE_URL) are required")
    # requests and azure-core let these variables override the CA given, which would hide ours.
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        os.environ.pop(var, None)
    try:
        result = asyncio.run(run(args))
    except GraphFailure as err:
        print(f"Graph failed: {err}", file=sys.stderr)
        return 1
    except psycopg.Error as err:
        print(f"The database failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 4
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
