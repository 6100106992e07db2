"""Wire-level test servers for iris-cloud.

The cloud SDKs are exercised for real against these servers over a socket:
``iris_cloud_emulators.servicebus`` speaks AMQP 1.0 to ``azure-servicebus`` and
``iris_cloud_emulators.pubsub`` speaks gRPC to ``google-cloud-pubsub``.
"""
