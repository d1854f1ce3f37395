"""The floor every service stands on: errors and their gRPC mapping, database, migrations, settings
helpers, logs, text checks and protobuf helpers. Imports nothing of ours."""
