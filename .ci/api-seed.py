#!/usr/bin/env python3
"""Gives the API check something real to work on, through the running demo: three tenants
connected the way a customer does it (an app of their own at the emulator, proved in the
wizard's customer-app form), the first synced, and one consented to the provider's app; a customer; invitations. Writes the schemathesis
configuration (the path given) that hands their ids to the operations that need them, so each
operation reaches its success path. Reads the CLI's environment (demo.env), GANGWAY_BIN and
GANGWAY_API_TOKEN."""
import http.cookiejar
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request

PUBLIC = os.environ["GANGWAY_PUBLIC_URL"].rstrip("/")
EMULATOR = os.environ["GANGWAY_AUTHORITY"].rstrip("/")
TOKEN = os.environ["GANGWAY_API_TOKEN"]
GANGWAY = os.environ["GANGWAY_BIN"]
# What a customer's own app needs (README: the built-in profile, customer app).
APPLICATION = ["User.Read.All", "Group.Read.All", "Organization.Read.All"]


def call(url, body=None, headers=None, method=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json", **(headers or {})},
        method=method,
    )
    with urllib.request.urlopen(request) as response:
        text = response.read()
    return json.loads(text) if text else None


def api(path):
    return call(f"{PUBLIC}/api/v1{path}", headers={"Authorization": f"Bearer {TOKEN}"})


def invite(customer, email, mode):
    out = subprocess.run(
        [GANGWAY, "invite", "create", "--customer", customer, "--email", email,
         "--mode", mode, "--json"],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def connect(tenant):
    """Registers and grants the tenant's own app at the emulator, then proves it in the wizard."""
    app = call(f"{EMULATOR}/_emulator/apps", {
        "home_tenant": tenant["id"], "multi_tenant": False,
        "display_name": "Directory reader", "redirect_uris": [],
        "permissions": {"delegated": [], "application": APPLICATION},
    })
    call(f"{EMULATOR}/_emulator/tenants/{tenant['id']}/consents",
         {"client_id": app["client_id"], "delegated": [], "application": APPLICATION})
    issued = invite(tenant["display_name"], tenant["admin"]["username"], "customer-app")
    browser = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = browser.open(issued["link"]).read().decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({
        "tenant_id": tenant["id"], "client_id": app["client_id"],
        "client_secret": app["client_secret"], "secret_expires": "", "csrf_token": csrf,
    }).encode()
    done = browser.open(f"{PUBLIC}/invitation/customer-app", form).read().decode()
    if "is connected" not in done:
        sys.exit(f"connecting {tenant['display_name']} failed:\n{done}")


def consent(tenant):
    """The tenant's admin grants the provider's app application consent through the wizard and
    Microsoft's sign-in and consent pages, as a customer does."""
    issued = invite(tenant["display_name"], tenant["admin"]["username"], "application")
    browser = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = browser.open(issued["link"]).read().decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = browser.open(f"{PUBLIC}/invitation/start",
                            urllib.parse.urlencode({"csrf_token": csrf}).encode())
    for _ in range(12):
        page, here = response.read().decode(), response.geturl()
        if not here.startswith(EMULATOR):
            break
        ctx = re.search(r'name="ctx" value="([^"]*)"', page)
        action = re.search(r'<form[^>]* action="([^"]+)"', page)
        if 'name="passwd"' in page:
            form = {"ctx": ctx.group(1), "login": tenant["admin"]["username"],
                    "passwd": tenant["admin"]["password"]}
        elif "idBtn_Accept" in page:
            form = {"ctx": ctx.group(1), "decision": "accept"}
        else:
            sys.exit(f"unexpected page at {here}:\n{page}")
        target = urllib.parse.urljoin(here, action.group(1).replace("&amp;", "&"))
        response = browser.open(target, urllib.parse.urlencode(form).encode())
    if "is connected" not in page:
        sys.exit(f"consenting {tenant['display_name']} failed:\n{page}")


def main(config_path):
    customers = call(f"{EMULATOR}/_emulator/tenants")[1:]  # the first is the provider's
    # A third tenant, for deletions held to reject (the synced one's are approved).
    customers = customers[:2] + [call(f"{EMULATOR}/_emulator/tenants",
                                      {"display_name": "Woodgrove", "users": 10, "groups": 2})]
    for tenant in customers:
        connect(tenant)
    # A fourth, consented to the provider's own app (application permissions): its consent is
    # what the consent check reads.
    granting = call(f"{EMULATOR}/_emulator/tenants",
                    {"display_name": "Northwind", "users": 5, "groups": 1})
    consent(granting)
    tenants = {t["entra_tenant_id"]: t["id"] for t in api("/tenants")["items"]}
    consented = tenants[granting["id"]]
    synced, offboarded, guarded = (tenants[t["id"]] for t in customers)
    for tenant in (synced, guarded):
        for _ in range(120):
            groups = api(f"/tenants/{tenant}/groups")["items"]
            if groups:
                break
            time.sleep(0.5)
        else:
            sys.exit("the first sync brought no groups within a minute")
    groups = api(f"/tenants/{synced}/groups")["items"]
    customer = api("/customers")["items"][0]["id"]
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def register(name, kind="spa"):
        return call(f"{PUBLIC}/api/v1/applications", {
            "name": name, "kind": kind,
            "redirect_uris": ["https://app.provider.example/signed-in"],
        }, headers=auth)["application"]["id"]

    application, doomed = register("Seeded sign-in application"), register("To delete")
    # Keys are a web application's: the documented example set registers.
    web = register("Seeded web application", "web")
    # Account links: one user linked (read), one linked (to unlink), one left to link.
    users = [u["object_id"] for u in api(f"/tenants/{synced}/users")["items"][:3]]
    if len(users) < 3:
        sys.exit("the synced tenant has fewer than three users to link")
    tid = customers[0]["id"]
    links = "/api/v1/applications/{id}/links/{tid}/{oid}"
    for user, account in zip(users[:2], ["seeded-account", "account-to-unlink"]):
        call(f"{PUBLIC}/api/v1/applications/{application}/links/{tid}/{user}",
             {"account_id": account}, headers=auth, method="PUT")
    # Deletions held in two tenants (a guard of one object, two users deleted at Microsoft).
    for tenant, entra in ((synced, customers[0]), (guarded, customers[2])):
        call(f"{PUBLIC}/api/v1/tenants/{tenant}/deletion-guard", {"percent": None, "objects": 1},
             headers=auth, method="PUT")
        for user in api(f"/tenants/{tenant}/users")["items"][3:5]:
            call(f"{EMULATOR}/_emulator/tenants/{entra['id']}/users/{user['object_id']}",
                 method="DELETE")
        call(f"{PUBLIC}/api/v1/tenants/{tenant}/sync", {}, headers=auth, method="POST")
        for _ in range(120):
            if api(f"/tenants/{tenant}/deletions")["held"]:
                break
            time.sleep(0.5)
        else:
            sys.exit("no deletions were held within a minute")
    # SCIM connections (to a public name: saving it resolves nothing it may not reach), one kept
    # and one to delete; a webhook endpoint with a test delivery to send again.
    def scim(name):
        return call(f"{PUBLIC}/api/v1/scim/connections", {
            "name": name, "base_url": "https://scim.provider.example/scim/v2",
            "token": "seeded-scim-token", "enabled": False,
        }, headers=auth)["id"]

    scim_kept, scim_doomed = scim("Seeded SCIM connection"), scim("SCIM connection to delete")
    hook = call(f"{PUBLIC}/api/v1/webhooks", {
        "url": "https://hooks.provider.example/seeded", "events": ["*"],
    }, headers=auth)["webhook"]["id"]
    call(f"{PUBLIC}/api/v1/webhooks/{hook}/test", {}, headers=auth, method="POST")
    delivery = api(f"/webhooks/{hook}/deliveries")["items"][0]["id"]
    kept = invite("Contoso", "admin@contoso.example", "delegated")["id"]
    revoked = invite("Contoso", "it@contoso.example", "delegated")["id"]

    ids = {
        "GET /api/v1/customers/{id}": {"id": customer},
        "GET /api/v1/applications/{id}": {"id": application},
        "PATCH /api/v1/applications/{id}": {"id": application},
        "DELETE /api/v1/applications/{id}": {"id": doomed},
        "PUT /api/v1/applications/{id}/keys": {"id": web},
        "GET /api/v1/applications/{id}/links": {"id": application},
        f"GET {links}": {"id": application, "tid": tid, "oid": users[0]},
        f"DELETE {links}": {"id": application, "tid": tid, "oid": users[1]},
        f"PUT {links}": {"id": application, "tid": tid, "oid": users[2]},
        "GET /api/v1/invitations/{id}": {"id": kept},
        "POST /api/v1/invitations/{id}/resend": {"id": kept},
        "POST /api/v1/invitations/{id}/revoke": {"id": revoked},
        "POST /api/v1/tenants/{id}/offboard": {"id": offboarded},
        "GET /api/v1/tenants/{id}/groups/{group_id}/members":
            {"id": synced, "group_id": groups[0]["object_id"]},
        "GET /api/v1/tenants/{id}/users/{user_id}/groups": {"id": synced, "user_id": users[0]},
        "POST /api/v1/tenants/{id}/deletions/approve": {"id": synced},
        "POST /api/v1/tenants/{id}/deletions/reject": {"id": guarded},
        # The scope is read and set on the guarded tenant: a generated scope may stop its syncs.
        "GET /api/v1/tenants/{id}/scope": {"id": guarded},
        "PUT /api/v1/tenants/{id}/scope": {"id": guarded},
        "GET /api/v1/scim/connections/{id}": {"id": scim_kept},
        "PUT /api/v1/scim/connections/{id}": {"id": scim_kept},
        "POST /api/v1/scim/connections/{id}/push": {"id": scim_kept},
        "GET /api/v1/scim/connections/{id}/log": {"id": scim_kept},
        "DELETE /api/v1/scim/connections/{id}": {"id": scim_doomed},
        "POST /api/v1/webhooks/{id}/deliveries/{delivery_id}/send-again":
            {"id": hook, "delivery_id": delivery},
        "GET /api/v1/tenants/{id}/consent": {"id": consented},
        "POST /api/v1/tenants/{id}/consent": {"id": consented},
    }
    for operation in ["GET /api/v1/tenants/{id}", "POST /api/v1/tenants/{id}/sync",
                      "PUT /api/v1/tenants/{id}/schedule", "GET /api/v1/tenants/{id}/sync-runs",
                      "GET /api/v1/tenants/{id}/users", "GET /api/v1/tenants/{id}/groups"]:
        ids[operation] = {"id": synced}
    with open(config_path, "w") as config:
        for operation, parameters in ids.items():
            values = ", ".join(f'"path.{k}" = "{v}"' for k, v in parameters.items())
            config.write(f'[[operations]]\ninclude-name = "{operation}"\n'
                         f"parameters = {{ {values} }}\n\n")
    print(f"seeded: tenants {synced} (synced, {len(groups)} groups) and {offboarded} "
          f"(to offboard), customer {customer}, invitations {kept} and {revoked} (to revoke), "
          f"applications {application} and {doomed} (to delete) with account links, {web} (web, "
          f"for keys)")


if __name__ == "__main__":
    main(sys.argv[1])
