"""Apps on the official Inngest SDKs, executed by perdure over HTTP (the Inngest protocol).

- :mod:`perdure.inngest.functions`: a synced function as a perdure function (parse, store,
  rebuild); :mod:`perdure.inngest.options`: its flow-control options.
- :mod:`perdure.inngest.sync`: registering, replacing and removing apps; polling app URLs.
- :mod:`perdure.inngest.routes`: the Inngest-compatible HTTP routes of the perdure server.
- :mod:`perdure.inngest.driver`: the driver that executes runs by calling the apps.
"""
