"""Broker provisioning: CA, device certificates, passwords, Mosquitto config, ACL, bridge."""

from mqtt.provision.devices import Device, ProvisionError, load_devices
from mqtt.provision.run import ProvisionResult, provision

__all__ = ["Device", "ProvisionError", "ProvisionResult", "load_devices", "provision"]
