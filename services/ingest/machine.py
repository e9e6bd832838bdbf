"""Is this open or click a person, or a machine acting for the mailbox? (pure)

Machine activity is flagged, never dropped: scoring and reporting decide what it is worth.
- Privacy-proxy opens: Apple Mail Privacy Protection prefetches every image of every message, so an
  open says nothing about the reader. Providers that detect it say so (SendGrid `sg_machine_open`);
  for our own pixel we recognise the proxy by its bare `Mozilla/5.0` user agent.
- Scanner clicks: mail security gateways (Proofpoint, Mimecast, Barracuda, Microsoft Safe Links, ...)
  fetch links before the person sees the message: known agents, a click within seconds of sending,
  or many links of one message clicked within a second or two.
"""

import re
from collections import OrderedDict
from dataclasses import dataclass, field

from crawlerdetect import CrawlerDetect

_SCANNER_AGENTS = re.compile(
    r"proofpoint|mimecast|barracuda|safelinks|bingpreview|symantec|messagelabs|trendmicro|sophos|"
    r"forcepoint|zscaler|fortinet|cisco|ironport|checkpoint|paloalto|appriver|agari|"
    r"python-requests|go-http-client|curl/|wget/|headlesschrome|phantomjs|scrapy|java/|okhttp|libwww",
    re.IGNORECASE,
)
_PROXY_OPEN_AGENTS = re.compile(r"^Mozilla/5\.0$|YahooMailProxy|Outlook-iOS-Android-Proxy", re.IGNORECASE)
SECONDS_AFTER_SEND = 10.0
BURST_SECONDS = 2.0
BURST_LINKS = 3

_crawlers = CrawlerDetect()


@dataclass(frozen=True)
class Verdict:
    machine: bool
    reason: str | None = None


HUMAN = Verdict(False)


def judge_open(user_agent: str | None, *, provider_says_machine: bool = False) -> Verdict:
    if provider_says_machine:
        return Verdict(True, "privacy_proxy (provider)")
    if user_agent is not None and _PROXY_OPEN_AGENTS.search(user_agent.strip()):
        return Verdict(True, "privacy_proxy")
    return HUMAN


def judge_click(
    user_agent: str | None,
    *,
    seconds_since_send: float | None = None,
    links_in_burst: int = 1,
) -> Verdict:
    if user_agent and (_SCANNER_AGENTS.search(user_agent) or _crawlers.isCrawler(user_agent)):
        return Verdict(True, "scanner_agent")
    if seconds_since_send is not None and 0 <= seconds_since_send < SECONDS_AFTER_SEND:
        return Verdict(True, "clicked_seconds_after_send")
    if links_in_burst >= BURST_LINKS:
        return Verdict(True, "many_links_at_once")
    return HUMAN


@dataclass
class ClickBursts:
    """Recent clicks per message, to see 'all links at once'. Bounded; per process."""

    max_messages: int = 10_000
    _clicks: OrderedDict[str, list[tuple[float, str]]] = field(default_factory=OrderedDict)

    def record(self, message_id: str, link: str, now: float) -> int:
        """Record a click; returns how many distinct links of the message were clicked in the last burst window."""
        recent = [(t, u) for t, u in self._clicks.pop(message_id, []) if now - t <= BURST_SECONDS]
        recent.append((now, link))
        self._clicks[message_id] = recent
        while len(self._clicks) > self.max_messages:
            self._clicks.popitem(last=False)
        return len({u for _, u in recent})
