#!/usr/bin/env python3
"""Independent-client check: Microsoft's MSAL for Python signs a user in with the authorization
code flow against the emulator (PKCE, state and nonce are MSAL's own) and reads the ID token.

Prints {"auth_uri": ...} and waits for the redirect URL the browser was sent to on stdin; then
prints {"id_token_claims": {...}} (or {"error": ...}).
Exit codes: 0 ok, 1 token failure, 3 MSAL not installed.
"""
import argparse
import json
import os
import sys
from urllib.parse import parse_qsl, urlparse

try:
    import msal
except ImportError as err:  # the Rust test turns this into a clear failure
    print(f"MSAL for Python is missing ({err}); install it with: pip install msal", file=sys.stderr)
    sys.exit(3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--authority", required=True, help="https://localhost:PORT/<tenant id>")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--ca-file", required=True, help="PEM of the emulator's CA")
    parser.add_argument("--redirect-uri", required=True)
    args = parser.parse_args()
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        os.environ.pop(var, None)

    app = msal.ConfidentialClientApplication(
        args.client_id,
        client_credential=args.client_secret,
        authority=args.authority,
        instance_discovery=False,
        verify=args.ca_file,
    )
    flow = app.initiate_auth_code_flow(
        ["https://graph.microsoft.com/User.Read"], redirect_uri=args.redirect_uri, prompt="consent"
    )
    print(json.dumps({"auth_uri": flow["auth_uri"]}), flush=True)
    back = sys.stdin.readline().strip()
    answer = dict(parse_qsl(urlparse(back).query))
    result = app.acquire_token_by_auth_code_flow(flow, answer)
    if "id_token_claims" not in result:
        print(json.dumps({"error": result}), flush=True)
        return 1
    print(json.dumps({"id_token_claims": result["id_token_claims"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
