#!/usr/bin/env python3
"""Independent-client check: Microsoft's MSAL for Python gets a client-credentials token from the
emulator (authority pointed at it, instance discovery off), authenticating with the client secret
or with a certificate (a signed client assertion), and reads /v1.0/users with it.

Prints one JSON line: {"token_type": ..., "expires_in": ..., "users": N, "first": "<upn>"}.
Exit codes: 0 ok, 1 token or Graph failure, 3 MSAL not installed.
"""
import argparse
import json
import os
import sys

try:
    import msal
    import requests
except ImportError as err:  # the Rust test turns this into a clear failure
    print(f"MSAL for Python is missing ({err}); install it with: pip install msal", file=sys.stderr)
    sys.exit(3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--authority", required=True, help="https://localhost:PORT/<tenant id>")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", help="authenticate with this secret, or:")
    parser.add_argument("--private-key-file", help="PEM private key of a certificate on the app")
    parser.add_argument("--thumbprint", help="that certificate's SHA-1 thumbprint (hex)")
    parser.add_argument("--ca-file", required=True, help="PEM of the emulator's CA")
    parser.add_argument("--graph", required=True, help="Graph base URL (same as the emulator's)")
    args = parser.parse_args()
    # requests lets these variables override a session's `verify`, which would hide our CA.
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        os.environ.pop(var, None)

    if args.private_key_file:
        with open(args.private_key_file, encoding="ascii") as key:
            credential = {"private_key": key.read(), "thumbprint": args.thumbprint}
    else:
        credential = args.client_secret
    app = msal.ConfidentialClientApplication(
        args.client_id,
        client_credential=credential,
        authority=args.authority,
        instance_discovery=False,
        verify=args.ca_file,
    )
    result = app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
    if "access_token" not in result:
        print(json.dumps(result), file=sys.stderr)
        return 1
    resp = requests.get(
        f"{args.graph}/v1.0/users",
        headers={"Authorization": f"Bearer {result['access_token']}"},
        verify=args.ca_file,
        timeout=30,
    )
    if resp.status_code != 200:
        print(f"GET /v1.0/users: {resp.status_code} {resp.text}", file=sys.stderr)
        return 1
    users = resp.json()["value"]
    print(json.dumps({
        "token_type": result.get("token_type"),
        "expires_in": result.get("expires_in"),
        "users": len(users),
        "first": users[0]["userPrincipalName"] if users else None,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
