"""Apps on the official Inngest SDKs, executed by perdure over HTTP (the Inngest protocol)."""
