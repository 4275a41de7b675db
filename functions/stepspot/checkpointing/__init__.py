"""Checkpointing, one subsystem: the pure rules and the store here, its AWS adapters in ``aws/``.

* ``model``: key grammar, manifests, upload planning, retention and the interval rule (pure);
* ``files``: the local checkpoint directory (scan with sha256, atomic restore);
* ``store``: save / find / restore / list / clean up, on injected adapters;
* ``aws.objects`` (S3), ``aws.table`` (DynamoDB), ``aws.errors`` (botocore -> stepspot errors).

Its entry points live with the other entry points: the Lambda in ``stepspot.handlers.checkpoint_manager``,
the in-container loop in ``stepspot.agent.checkpoints``. Standard library and boto3 only, throughout:
the task runner bundle imports this package. Nothing is re-exported here, so importing one module does
not import the others.
"""
