#!/usr/bin/env python3
"""Independent-client check: Microsoft's MSAL for Python signs a user in with the device
authorization grant against the emulator, as a public client (no secret): initiate_device_flow,
then acquire_token_by_device_flow polls while the user enters the code elsewhere.

Prints {"user_code": ..., "verification_uri": ..., "interval": ...} as soon as it has the codes,
then {"token_type": ..., "scope": ..., "id_token_claims": {...}} (or {"error": ...}).
Exit codes: 0 ok, 1 flow or token failure, 3 MSAL not installed.
"""
import argparse
import json
import os
import sys

try:
    import msal
except ImportError as err:  # the Rust test turns this into a clear failure
    print(f"MSAL for Python is missing ({err}); install it with: pip install msal", file=sys.stderr)
    sys.exit(3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--authority", required=True, help="https://localhost:PORT/<tenant id>")
    parser.add_argument("--client-id", required=True, help="a public client")
    parser.add_argument("--scope", action="append", required=True)
    parser.add_argument("--ca-file", required=True, help="PEM of the emulator's CA")
    args = parser.parse_args()
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        os.environ.pop(var, None)

    app = msal.PublicClientApplication(
        args.client_id,
        authority=args.authority,
        instance_discovery=False,
        verify=args.ca_file,
    )
    flow = app.initiate_device_flow(scopes=args.scope)
    if "user_code" not in flow:
        print(json.dumps({"error": flow}), flush=True)
        return 1
    print(json.dumps({
        "user_code": flow["user_code"],
        "verification_uri": flow["verification_uri"],
        "interval": flow.get("interval"),
        "message": flow.get("message"),
    }), flush=True)
    result = app.acquire_token_by_device_flow(flow)
    if "access_token" not in result:
        print(json.dumps({"error": result}), flush=True)
        return 1
    print(json.dumps({
        "token_type": result.get("token_type"),
        "scope": result.get("scope"),
        "id_token_claims": result.get("id_token_claims"),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
