"""The service kit: what every Takt process shares (errors, settings, logging, status, MQTT).

One home per shared concern: a second loader, client or formatter "by copy" is how
this project's earlier bugs were born, so services import these instead.
"""
