"""Notification routes: WeCom group robot, generic JSON webhook, MQTT.

ROUTE_TYPES maps a route's `type` (config `notify.routes[].type`) to its config model and its
Route class; adding a route type = a module + its tests + one line here.
"""

from rules.notifiers.mqtt import MqttConfig, MqttRoute
from rules.notifiers.webhook import WebhookConfig, WebhookRoute
from rules.notifiers.wecom import WeComConfig, WeComRoute

ROUTE_TYPES = {
    "wecom": (WeComConfig, WeComRoute),
    "webhook": (WebhookConfig, WebhookRoute),
    "mqtt": (MqttConfig, MqttRoute),
}
