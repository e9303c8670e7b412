"""The safeguarding hub: live alerts, actions, child timelines, quality (SPEC sections 1, 5, 6).

- :mod:`streams.hub.state`: the pure fold (:class:`HubState`) and its queries;
- :mod:`streams.hub.feed`: :class:`HubFeed`, what the Kafka consumer calls;
- :mod:`streams.hub.auth`: users, tokens, sessions;
- :mod:`streams.hub.app`: the aiohttp application (:func:`create_app`, :func:`start_hub`);
- :mod:`streams.hub.kafka`: :class:`HubKafka`, the consumer and producer on the topics;
- :mod:`streams.hub.serve`: :func:`serve_hub` (all of it, until stopped), :func:`main_hub`
  (``safeguarding hub``).
"""

from streams.hub.app import HUB_FEED, PUBLIC_ROUTES, create_app, get_feed, start_hub
from streams.hub.auth import UserStore, load_users
from streams.hub.feed import HubFeed
from streams.hub.kafka import HubKafka, hub_topic_specs
from streams.hub.serve import hub_users, main_hub, serve_hub
from streams.hub.state import Filters, HubState, Outcome, QualityProvider, Workflow, live_quality

__all__ = [
    "HUB_FEED",
    "PUBLIC_ROUTES",
    "Filters",
    "HubFeed",
    "HubKafka",
    "HubState",
    "Outcome",
    "QualityProvider",
    "UserStore",
    "Workflow",
    "create_app",
    "get_feed",
    "hub_topic_specs",
    "hub_users",
    "live_quality",
    "load_users",
    "main_hub",
    "serve_hub",
    "start_hub",
]
