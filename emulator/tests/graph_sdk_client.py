#!/usr/bin/env python3
"""Independent-client check: Microsoft's Graph SDK for Python (msgraph-sdk, with azure-identity
for the client-credentials token) pages /v1.0/users with its PageIterator and walks a whole
/v1.0/users/delta round against the emulator; with --groups, a whole /v1.0/groups/delta round
too, merging each group's members@delta slices as Graph asks. Only configuration points it
there: the credential's authority, the request adapter's base URL, the allowed host and the
trusted CA.

Prints one JSON line: {"users": N, "pages": P, "first": "<upn>", "delta_users": N,
"delta_pages": P, "delta_paths": [...], "delta_link": "<url>"}; with --groups also
"groups": {"<id>": {"name", "sightings": N, "members": {"<id>": "<@odata.type>"}}}; and
"subscription": what a change-notification subscription on users came to (created with the SDK
against a listener on loopback that answers the validation request, notified of a change made
through the admin API, renewed and deleted with the SDK).
Exit codes: 0 ok, 1 a Graph or token failure, 3 the SDK is not installed.
"""
import argparse
import asyncio
import json
import os
import sys
from urllib.parse import urlparse

try:
    import httpx
    from azure.identity.aio import ClientSecretCredential
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from msgraph import GraphRequestAdapter, GraphServiceClient
    from msgraph.generated.users.users_request_builder import UsersRequestBuilder
    from msgraph.generated.models.user import User
    from msgraph_core import GraphClientFactory
    from msgraph_core.tasks.page_iterator import PageIterator
    from msgraph.generated.models.subscription import Subscription
except ImportError as err:  # the Rust test turns this into a clear failure
    print(
        f"The Graph SDK for Python is missing ({err}); install it with: "
        "pip install msgraph-sdk azure-identity",
        file=sys.stderr,
    )
    sys.exit(3)

GRAPH_DEFAULT = "https://graph.microsoft.com/.default"


async def run(args) -> dict:
    credential = ClientSecretCredential(
        args.tenant,
        args.client_id,
        args.client_secret,
        authority=args.authority,
        disable_instance_discovery=True,
        connection_verify=args.ca_file,
    )
    auth = AzureIdentityAuthenticationProvider(
        credential,
        scopes=[GRAPH_DEFAULT],
        allowed_hosts=[urlparse(args.graph).hostname],
    )
    paths = []  # every Graph path the SDK requested, to count its pages

    async def record(request):
        paths.append(request.url.path)

    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(
            verify=args.ca_file, timeout=30, event_hooks={"request": [record]}
        )
    )
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = f"{args.graph}/v1.0"
    client = GraphServiceClient(request_adapter=adapter)
    try:
        query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
            select=["id", "displayName", "userPrincipalName"], top=args.page_size
        )
        config = UsersRequestBuilder.UsersRequestBuilderGetRequestConfiguration(
            query_parameters=query
        )
        first_page = await client.users.get(request_configuration=config)
        names = []

        def keep(user: User) -> bool:
            names.append(user.user_principal_name)
            return True

        await PageIterator(first_page, adapter).iterate(keep)
        pages = paths.count("/v1.0/users")

        delta_users, delta_pages = [], 0
        page = await client.users.delta.get()
        while True:
            delta_pages += 1
            delta_users.extend(u.id for u in page.value or [])
            if page.odata_next_link:
                page = await client.users.delta.with_url(page.odata_next_link).get()
                continue
            break
        groups = await groups_round(client) if args.groups else None
        subscription = await subscription_round(client, args) if not args.groups else None
        return {
            "subscription": subscription,
            "groups": groups,
            "users": len(names),
            "pages": pages,
            "first": names[0] if names else None,
            "delta_users": len(set(delta_users)),
            "delta_pages": delta_pages,
            "delta_paths": sorted(set(p for p in paths if "delta" in p)),
            "delta_link": page.odata_delta_link,
        }
    finally:
        await credential.close()


async def groups_round(client) -> dict:
    """A /groups/delta round; a group may come on several pages, each with a slice of its
    members@delta (kept by the SDK in additional_data): merged by id, removals applied."""
    groups = {}
    page = await client.groups.delta.get()
    while True:
        for group in page.value or []:
            entry = groups.setdefault(
                str(group.id), {"name": group.display_name, "sightings": 0, "members": {}}
            )
            entry["sightings"] += 1
            for member in (group.additional_data or {}).get("members@delta", []):
                # The SDK reads a GUID-shaped string in additional_data as a UUID.
                member_id = str(member["id"])
                if "@removed" in member:
                    entry["members"].pop(member_id, None)
                else:
                    entry["members"][member_id] = member.get("@odata.type")
        if not page.odata_next_link:
            return groups
        page = await client.groups.delta.with_url(page.odata_next_link).get()


async def subscription_round(client, args) -> dict:
    """Creates a users subscription with the SDK (a plain-HTTP listener on loopback answers the
    validation request), changes a user through the admin API, waits for the notification,
    renews and deletes the subscription with the SDK."""
    import datetime
    from aiohttp import web

    seen = []

    async def hook(request):
        token = request.query.get("validationToken")
        if token is not None:
            return web.Response(text=token, content_type="text/plain")
        seen.extend((await request.json())["value"])
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/hook"
    try:
        now = datetime.datetime.now(datetime.timezone.utc)
        created = await client.subscriptions.post(
            Subscription(
                change_type="updated,deleted",
                notification_url=url,
                lifecycle_notification_url=url,
                resource="users",
                expiration_date_time=now + datetime.timedelta(hours=2),
                client_state="sdk-secret",
            )
        )
        async with httpx.AsyncClient(verify=args.ca_file) as admin:
            users = await client.users.get()
            target = users.value[-1].id
            resp = await admin.patch(
                f"{args.graph}/_emulator/tenants/{args.tenant}/users/{target}",
                json={"jobTitle": "Notified"},
            )
            resp.raise_for_status()
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.05)
        renewed = await client.subscriptions.by_subscription_id(created.id).patch(
            Subscription(expiration_date_time=now + datetime.timedelta(days=20))
        )
        await client.subscriptions.by_subscription_id(created.id).delete()
        left = await client.subscriptions.get()
        return {
            "resource": created.resource,
            "change_type": created.change_type,
            "notified_client_state": seen[0]["clientState"] if seen else None,
            "notified_change": seen[0]["changeType"] if seen else None,
            "renewed": renewed.expiration_date_time > created.expiration_date_time,
            "left_after_delete": len(left.value or []),
        }
    finally:
        await runner.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--authority", required=True, help="https://localhost:PORT")
    parser.add_argument("--tenant", required=True, help="tenant id")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--ca-file", required=True, help="PEM of the emulator's CA")
    parser.add_argument("--graph", required=True, help="Graph base URL (same as the emulator's)")
    parser.add_argument("--page-size", type=int, default=5, help="$top of the /users pages")
    parser.add_argument("--groups", action="store_true", help="also walk a /groups/delta round")
    args = parser.parse_args()
    # requests and azure-core let these variables override the CA given, which would hide ours.
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        os.environ.pop(var, None)
    try:
        result = asyncio.run(run(args))
    except Exception as err:  # any SDK failure is the emulator's fault here
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
