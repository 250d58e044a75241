"""Notification routes: WeCom group robot, generic JSON webhook, MQTT, e-mail, SMS (Alibaba, Tencent).

ROUTE_TYPES maps a route's `type` (config `notify.routes[].type`) to its config model and its
Route class; rules/alerting/config.py builds the config's `RouteConfig` union from it. Adding a
route type = a module + its tests + one line here.
"""

from rules.alerting.notifiers.email import EmailConfig, EmailRoute
from rules.alerting.notifiers.mqtt import MqttConfig, MqttRoute
from rules.alerting.notifiers.robots import DingTalkConfig, DingTalkRoute, FeishuConfig, FeishuRoute
from rules.alerting.notifiers.sms import SmsConfig, SmsRoute
from rules.alerting.notifiers.webhook import WebhookConfig, WebhookRoute
from rules.alerting.notifiers.wecom import WeComConfig, WeComRoute

ROUTE_TYPES = {
    WeComRoute.type: (WeComConfig, WeComRoute),
    WebhookRoute.type: (WebhookConfig, WebhookRoute),
    MqttRoute.type: (MqttConfig, MqttRoute),
    DingTalkRoute.type: (DingTalkConfig, DingTalkRoute),
    FeishuRoute.type: (FeishuConfig, FeishuRoute),
    EmailRoute.type: (EmailConfig, EmailRoute),
    SmsRoute.type: (SmsConfig, SmsRoute),
}
