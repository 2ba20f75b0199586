"""The /metrics endpoint: Prometheus counters per proxy and per toxic, built at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from .collection import ProxyCollection


class ProxyCollector(Collector):
    """Read counters from the live proxies, so a deleted proxy's series disappear with it."""

    def __init__(self, collection: ProxyCollection) -> None:
        self.collection = collection

    def collect(self) -> Iterator[Metric]:
        labels = ["proxy", "listener", "upstream", "direction"]
        received = CounterMetricFamily(
            "toxiproxy_proxy_received_bytes",
            "Bytes read by the proxy, per direction (upstream is client to server).",
            labels=labels,
        )
        sent = CounterMetricFamily(
            "toxiproxy_proxy_sent_bytes",
            "Bytes written by the proxy after its toxics, per direction.",
            labels=labels,
        )
        connections = CounterMetricFamily(
            "toxiproxy_proxy_connections",
            "Client connections accepted by the proxy.",
            labels=["proxy"],
        )
        open_connections = GaugeMetricFamily(
            "toxiproxy_proxy_open_connections",
            "Client connections open through the proxy now.",
            labels=["proxy"],
        )
        activations = CounterMetricFamily(
            "toxiproxy_toxic_activations",
            "Times a toxic became active on a connection (its toxicity draw succeeded).",
            labels=["proxy", "toxic", "type", "stream"],
        )

        for proxy in self.collection.proxies.values():
            bytes_received, bytes_sent = proxy.bytes_totals()
            for direction in sorted(set(bytes_received) | set(bytes_sent)):
                values = [proxy.name, proxy.listen, proxy.upstream, str(direction)]
                received.add_metric(values, bytes_received[direction])
                sent.add_metric(values, bytes_sent[direction])
            connections.add_metric([proxy.name], proxy.totals.connections)
            open_connections.add_metric([proxy.name], len(proxy.links))
            for toxic in proxy.all_toxics():
                activations.add_metric(
                    [proxy.name, toxic.name, toxic.type_name, str(toxic.stream)],
                    proxy.totals.activations[toxic.name],
                )

        yield from (received, sent, connections, open_connections, activations)


def build_registry(collection: ProxyCollection) -> CollectorRegistry:
    """Return a registry holding only the proxy collector (no process or GC metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProxyCollector(collection))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """Return the Prometheus text exposition of the registry."""
    return generate_latest(registry)
