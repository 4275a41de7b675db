"""Thin adapters over AWS services, one per service, with domain verbs and an injected boto3 client."""
