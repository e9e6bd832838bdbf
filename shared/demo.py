"""`leadflow demo`: fill a running stack with a seeded quarter of B2B activity, through public interfaces only.

Everything goes over HTTP to the four services, the way real tools would send it: ingest sources created with
the admin API and used with their own credentials (Segment calls, SendGrid's ECDSA-signed and Mailgun's and
Typeform's HMAC-signed webhooks, t.js collect calls, QR scans, a CRM posting deals), the reporting registry
(campaigns, costs, targets), the routing directory and rules, and reps working their queues with their own
tokens. Nothing is written to PostgreSQL or Kafka directly.

The world is seeded: the same `--seed` and `--scale` give the same people, companies, touches, decisions and
deals. Event times are spread over the 90 days before the run (signatures are made at send time, as providers
do). The story the dashboard tells: the webinar and the LinkedIn account-based campaign bring fewer but better
leads and most of the revenue per cost; paid search brings volume and little revenue; content syndication
brings students and competitors that sales rejects; one EMEA rep never answers, so their leads breach the
accept SLA and move on.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import random
import secrets
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

SITE = "https://www.leadflow-demo.example"
DAYS = 90


@dataclass(frozen=True)
class Urls:
    ingest: str = "http://127.0.0.1:8001"
    scoring: str = "http://127.0.0.1:8002"
    routing: str = "http://127.0.0.1:8003"
    reporting: str = "http://127.0.0.1:8004"


@dataclass(frozen=True)
class CampaignPlan:
    id: str
    name: str
    channel: str
    type: str
    cost: int
    share: float  # of people first touched by it
    quality: float  # chance a person is a good fit and intends to buy
    junk: float  # chance a person is a student or competitor
    win: float  # chance an opportunity is won
    deal_size: tuple[int, int]
    utm_source: str
    utm_medium: str


CAMPAIGNS: tuple[CampaignPlan, ...] = (
    CampaignPlan(
        "webinar-q4",
        "Q4 product webinar",
        "email",
        "nurture",
        12_000,
        0.16,
        0.55,
        0.02,
        0.6,
        (20_000, 60_000),
        "sendgrid",
        "email",
    ),
    CampaignPlan(
        "linkedin-abm",
        "LinkedIn ABM",
        "paid_social",
        "lead_generation",
        30_000,
        0.16,
        0.5,
        0.03,
        0.55,
        (40_000, 120_000),
        "linkedin",
        "paid_social",
    ),
    CampaignPlan(
        "google-ads",
        "Google Ads",
        "paid_search",
        "lead_generation",
        45_000,
        0.3,
        0.15,
        0.08,
        0.25,
        (5_000, 20_000),
        "google",
        "cpc",
    ),
    CampaignPlan(
        "newsletter",
        "Monthly newsletter",
        "email",
        "nurture",
        3_000,
        0.14,
        0.3,
        0.03,
        0.4,
        (8_000, 30_000),
        "mailgun",
        "email",
    ),
    CampaignPlan(
        "trade-show",
        "SaaStr booth",
        "events",
        "promotion",
        25_000,
        0.1,
        0.35,
        0.05,
        0.4,
        (15_000, 50_000),
        "qr",
        "offline",
    ),
    CampaignPlan(
        "content-syndication",
        "Content syndication",
        "partner",
        "lead_generation",
        20_000,
        0.14,
        0.08,
        0.45,
        0.2,
        (5_000, 15_000),
        "partner",
        "syndication",
    ),
)

INDUSTRIES = ("software", "saas", "financial services", "healthcare", "manufacturing", "retail", "education")
GOOD_TITLES = ("VP Sales", "Head of Marketing", "Chief Revenue Officer", "Director of Operations", "CMO")
OTHER_TITLES = ("Marketing Coordinator", "Analyst", "Engineer", "Office Manager", "Intern")
EMEA = ("DE", "GB", "FR", "NL", "SE", "ES")
AMERICAS = ("US", "CA", "BR")
FIRST = (
    "ada",
    "alan",
    "grace",
    "linus",
    "margaret",
    "ken",
    "barbara",
    "dennis",
    "frances",
    "edsger",
    "radia",
    "tim",
    "hedy",
    "john",
    "katherine",
    "guido",
    "anita",
    "bjarne",
    "sophie",
    "yukihiro",
)
LAST = (
    "lovelace",
    "turing",
    "hopper",
    "torvalds",
    "hamilton",
    "thompson",
    "liskov",
    "ritchie",
    "allen",
    "dijkstra",
    "perlman",
    "lee",
    "lamarr",
    "backus",
    "johnson",
    "rossum",
    "borg",
    "stroustrup",
    "wilson",
    "matsumoto",
)
REASONS = {
    "student": ("Student", False),
    "competitor": ("Competitor", False),
    "bad_timing": ("Bad timing", True),
    "no_budget": ("No budget", True),
}


@dataclass(frozen=True)
class Company:
    domain: str
    name: str
    industry: str
    employees: int
    country: str


@dataclass
class Person:
    n: int
    email: str
    anonymous_id: str
    first: str
    last: str
    title: str
    company: Company
    campaign: CampaignPlan
    good: bool  # fits and intends to buy: asks for a demo
    junk: str | None  # "student" or "competitor": asks for a demo, sales rejects
    wins: bool
    amount: int
    start: datetime
    touches: list[datetime] = field(default_factory=list)

    @property
    def identity(self) -> dict[str, str]:
        return {"email": self.email, "anonymous_id": self.anonymous_id}

    def attributes(self) -> dict[str, Any]:
        c = self.company
        return {
            "title": self.title,
            "company": c.name,
            "industry": c.industry,
            "employees": c.employees,
            "country": c.country,
            "first_name": self.first.title(),
            "last_name": self.last.title(),
        }


@dataclass
class World:
    seed: int
    now: datetime
    companies: list[Company]
    people: list[Person]
    targets: list[Company]  # named accounts, owned by a rep


def build_world(seed: int, scale: int, now: datetime) -> World:
    rng = random.Random(seed)
    companies = []
    for i in range(max(8, scale // 4)):
        word = rng.choice(("acme", "globex", "initech", "umbrella", "hooli", "vandelay", "stark", "wayne", "tyrell"))
        country = rng.choice(EMEA + AMERICAS)
        companies.append(
            Company(
                f"{word}{i}.example",
                f"{word.title()} {i}",
                rng.choice(INDUSTRIES),
                rng.choice((12, 30, 80, 150, 400, 900, 2500, 12000)),
                country,
            )
        )
    good_companies = [c for c in companies if 50 <= c.employees <= 5000 and c.industry in INDUSTRIES[:5]]
    people = []
    weights = [c.share for c in CAMPAIGNS]
    for n in range(scale):
        plan = rng.choices(CAMPAIGNS, weights)[0]
        roll = rng.random()
        junk = rng.choice(("student", "competitor")) if roll < plan.junk else None
        good = junk is None and rng.random() < plan.quality and bool(good_companies)
        company = rng.choice(good_companies) if good else rng.choice(companies)
        first, last = rng.choice(FIRST), rng.choice(LAST)
        if junk:  # syndicated junk claims a good company and a senior title: it is sales who say no
            company = rng.choice(good_companies) if good_companies else company
        title = rng.choice(GOOD_TITLES) if good or junk else rng.choice(GOOD_TITLES + OTHER_TITLES)
        domain = "university.example" if junk == "student" else company.domain
        email = f"{first}.{last}{n}@{domain}"
        low, high = plan.deal_size
        start = now - timedelta(days=DAYS) + timedelta(days=rng.uniform(0, DAYS - 12), hours=rng.uniform(0, 24))
        people.append(
            Person(
                n,
                email,
                f"anon-{seed}-{n:06d}",
                first,
                last,
                title,
                company,
                plan,
                good,
                junk,
                rng.random() < plan.win,
                rng.randrange(low, high, 500),
                start,
            )
        )
    targets = good_companies[:3]
    return World(seed, now, companies, people, targets)


# Signing, as each provider signs


def sendgrid_headers(private: ec.EllipticCurvePrivateKey, body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    signature = private.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "content-type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
    }


def mailgun_signature(key: str) -> dict[str, str]:
    stamp, token = str(int(time.time())), secrets.token_hex(25)
    digest = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return {"timestamp": stamp, "token": token, "signature": digest}


def typeform_headers(secret: str, body: bytes) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {"content-type": "application/json", "Typeform-Signature": "sha256=" + base64.b64encode(digest).decode()}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def utm(plan: CampaignPlan) -> dict[str, str]:
    return {"utm_source": plan.utm_source, "utm_medium": plan.utm_medium, "utm_campaign": plan.id}


def tagged(url: str, plan: CampaignPlan) -> str:
    return url + "?" + "&".join(f"{k}={v}" for k, v in utm(plan).items())


class Demo:
    """The run: set up the registry, directory and sources, send the quarter, work the queues, close deals."""

    def __init__(
        self,
        urls: Urls,
        admin_token: str,
        seed: int,
        scale: int,
        *,
        settle_s: float = 45,
        concurrency: int = 16,
        progress: Progress | None = None,
    ) -> None:
        self.urls, self.seed, self.scale, self.settle_s = urls, seed, scale, settle_s
        self.admin = {"authorization": f"Bearer {admin_token}"}
        self.world = build_world(seed, scale, datetime.now(UTC).replace(microsecond=0))
        self.rng = random.Random(seed + 1)
        self.limit = asyncio.Semaphore(concurrency)
        self.progress = progress
        self.http: httpx.AsyncClient = httpx.AsyncClient(timeout=30)
        self.sources: dict[str, dict[str, Any]] = {}
        self.sendgrid_key = ec.generate_private_key(ec.SECP256R1())
        self.mailgun_key = "key-" + secrets.token_hex(16)
        self.tokens: dict[str, str] = {}
        self.qr: dict[str, str] = {}
        self.by_email = {p.email: p for p in self.world.people}
        self.lead_of: dict[str, Person] = {}
        self.won_by_lead: dict[str, str] = {}  # lead id (as routed) -> id of the deal it won
        self.summary: dict[str, Any] = {"won": 0, "won_revenue": 0, "lost": 0, "accepted": 0, "rejected": 0}

    # plumbing

    async def call(self, method: str, url: str, *, ok: Iterable[int] = (200, 201, 202, 204), **kw: Any) -> Any:
        for attempt in range(8):
            async with self.limit:
                response = await self.http.request(method, url, **kw)
            if response.status_code in (429, 503) and attempt < 7:
                await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                continue
            if response.status_code not in ok:
                raise RuntimeError(f"{method} {url}: {response.status_code} {response.text[:300]}")
            if not response.content or "json" not in response.headers.get("content-type", ""):
                return None
            return response.json()
        raise AssertionError("unreachable")

    async def steps(self, label: str, people: list[Person]) -> None:
        task = self.progress.add_task(label, total=len(people)) if self.progress else None

        async def one(person: Person) -> None:
            await self.send_person(person)
            if self.progress is not None and task is not None:
                self.progress.advance(task)

        await asyncio.gather(*(one(p) for p in people))

    # 1. the registry, directory and sources

    async def set_up(self) -> None:
        ingest, routing, reporting, now = self.urls.ingest, self.urls.routing, self.urls.reporting, self.world.now
        der = self.sendgrid_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        kinds: dict[str, dict[str, Any]] = {
            "segment": {"kind": "segment"},
            "web": {"kind": "web"},
            "crm": {"kind": "api"},
            "events": {"kind": "api"},
            "sendgrid": {"kind": "sendgrid", "public_key": base64.b64encode(der).decode()},
            "mailgun": {"kind": "mailgun", "signing_secret": self.mailgun_key},
            "typeform": {"kind": "typeform"},
        }
        for name, body in kinds.items():
            created = await self.call(
                "POST",
                f"{ingest}/v1/admin/sources",
                headers=self.admin,
                json={"name": f"demo {name} (seed {self.seed})", "rate_limit_per_s": 20_000, **body},
            )
            self.sources[name] = created
        for plan in CAMPAIGNS:
            await self.call(
                "PUT",
                f"{reporting}/v1/campaigns/{plan.id}",
                headers=self.admin,
                json={
                    "name": plan.name,
                    "channel": plan.channel,
                    "type": plan.type,
                    "starts_on": (now - timedelta(days=DAYS)).date().isoformat(),
                    "utm": [{"utm_campaign": plan.id}],
                },
            )
        start, end = (now - timedelta(days=DAYS)).date(), now.date()
        rows = "".join(f"{p.id},{start},{end},{p.cost},USD\n" for p in CAMPAIGNS)
        await self.call(
            "POST",
            f"{reporting}/v1/costs/import",
            headers={**self.admin, "content-type": "text/csv"},
            content="campaign_id,period_start,period_end,amount,currency\n" + rows,
        )
        months = sorted({(now - timedelta(days=d)).strftime("%Y-%m") for d in range(0, DAYS + 1, 15)})
        targets = [
            {"period": m, "metric": k, "value": v * max(1, self.scale) / 1000}
            for m in months
            for k, v in (("mqls", 120), ("sqls", 60), ("pipeline", 2_500_000), ("revenue", 1_500_000))
        ]
        await self.call("PUT", f"{reporting}/v1/targets", headers=self.admin, json=targets)
        sla = {"accept_minutes": 60, "first_contact_minutes": 480}
        always = {"days": [0, 1, 2, 3, 4, 5, 6], "start": "00:00:00", "end": "23:59:59"}
        directory: list[tuple[str, str, dict[str, Any]]] = [
            ("territories", "emea", {"name": "EMEA", "countries": list(EMEA)}),
            ("territories", "americas", {"name": "Americas", "countries": list(AMERICAS)}),
            ("teams", "emea", {"name": "EMEA sales", "sla": sla}),
            ("teams", "americas", {"name": "Americas sales", "sla": sla}),
        ]
        self.reps = {"emea": ["hanna", "lars", "ghost"], "americas": ["maria", "jack", "priya"]}
        zones = {"emea": "Europe/Berlin", "americas": "America/New_York"}
        for team, reps in self.reps.items():
            for rep in reps:
                body = {
                    "name": rep.title(),
                    "team_ids": [team],
                    "time_zone": zones[team],
                    "working_hours": always,
                    "capacity": 10_000,
                    "weight": 1,
                }
                directory.append(("reps", rep, body))
        owned = [{"account": c.domain, "owner_rep_id": "priya"} for c in self.world.targets]
        directory.append(("account-lists", "strategic", {"name": "Strategic accounts", "rank": 0, "accounts": owned}))
        for reason, (label, credit_back) in REASONS.items():
            directory.append(("rejection-reasons", reason, {"label": label, "credit_back": credit_back}))
        for kind, key, body in directory:
            await self.call("PUT", f"{routing}/v1/admin/{kind}/{key}", headers=self.admin, json=body)
        rules = {
            "rules": [
                {"id": "emea", "when": {"territories": ["emea"]}, "team_id": "emea"},
                {"id": "americas", "when": {"territories": ["americas"]}, "team_id": "americas"},
            ],
            "fallback_team_id": "americas",
        }
        await self.call("PUT", f"{routing}/v1/admin/rules", headers=self.admin, json=rules)
        for rep in [r for reps in self.reps.values() for r in reps]:
            user = f"demo-{rep}"
            await self.call("DELETE", f"{routing}/v1/admin/users/{user}", headers=self.admin, ok=(204, 404))
            made = await self.call(
                "POST",
                f"{routing}/v1/admin/users",
                headers=self.admin,
                json={"id": user, "name": rep.title(), "role": "rep", "rep_id": rep},
            )
            self.tokens[rep] = made["token"]
        show = next(p for p in CAMPAIGNS if p.id == "trade-show")
        made = await self.call(
            "POST",
            f"{ingest}/v1/admin/qr-codes",
            headers=self.admin,
            json={
                "source_id": self.sources["web"]["id"],
                "campaign_id": show.id,
                "target_url": tagged(f"{SITE}/booth", show),
                "name": "SaaStr booth poster",
            },
        )
        self.qr[show.id] = f"{ingest}/q/{made['code']}"  # the scan URL as reached from here

    # 2. the quarter of signals, one person's touches in time order

    def later(self, person: Person, rng: random.Random, low_h: float, high_h: float) -> datetime:
        last = person.touches[-1] if person.touches else person.start
        moment = min(last + timedelta(hours=rng.uniform(low_h, high_h)), self.world.now - timedelta(minutes=5))
        if last >= self.world.now:  # after a touch that happened during the run (a QR scan): now, not before it
            moment = datetime.now(UTC)
        person.touches.append(moment)
        return moment

    async def segment(self, messages: list[dict[str, Any]]) -> None:
        key = self.sources["segment"]["credentials"]["write_key"]
        await self.call(
            "POST",
            f"{self.urls.ingest}/v1/batch",
            auth=(key, ""),
            json={"batch": messages, "sentAt": iso(datetime.now(UTC))},
        )

    async def native(self, source: str, path: str, body: Any) -> None:
        key = self.sources[source]["credentials"]["write_key"]
        await self.call("POST", f"{self.urls.ingest}{path}", headers={"authorization": f"Bearer {key}"}, json=body)

    def page(self, person: Person, url: str, at: datetime, n: int) -> dict[str, Any]:
        return {
            "type": "page",
            "anonymousId": person.anonymous_id,
            "messageId": f"demo-{self.seed}-{person.n}-p{n}",
            "timestamp": iso(at),
            "name": url.split("?")[0].rsplit("/", 1)[-1] or "home",
            "context": {"page": {"url": url}},
            "properties": {"url": url},
        }

    async def send_person(self, p: Person) -> None:
        rng = random.Random(self.seed * 1_000_003 + p.n)
        plan, ingest = p.campaign, self.urls.ingest
        if plan.id in ("webinar-q4", "newsletter"):
            for i in range(rng.randint(1, 3)):
                await self.email(p, rng, i, click=rng.random() < (0.6 if p.good else 0.25))
            if plan.id == "webinar-q4" and (p.good or rng.random() < 0.3):
                await self.native(
                    "events",
                    "/v1/events",
                    {
                        "type": "leadflow.touch.event_attended.v1",
                        "identity": {"email": p.email},
                        "occurred_at": iso(self.later(p, rng, 24, 96)),
                        "event_name": "Q4 product webinar",
                        "campaign": {"campaign_id": plan.id, **utm(plan)},
                        "channel": "email",
                    },
                )
        elif plan.id in ("linkedin-abm", "google-ads"):
            pages = [self.page(p, tagged(f"{SITE}/", plan), self.later(p, rng, 0, 2), 0)]
            pages += [self.page(p, f"{SITE}/product", self.later(p, rng, 0.01, 1), 1)]
            await self.segment(pages)
        elif plan.id == "trade-show":
            await self.call("GET", self.qr[plan.id], headers={"cookie": f"lf_aid={p.anonymous_id}"}, ok=(302,))
            p.touches.append(datetime.now(UTC))
        else:  # content syndication: the partner posts the ebook download form with our API
            await self.native(
                "events",
                "/v1/events",
                {
                    "type": "leadflow.touch.form_fill.v1",
                    "identity": {"email": p.email},
                    "occurred_at": iso(self.later(p, rng, 0, 2)),
                    "form_id": "ebook",
                    "form_name": "B2B ebook",
                    "campaign": {"campaign_id": plan.id, **utm(plan)},
                    "channel": "partner",
                    "attributes": p.attributes(),
                },
            )
        if plan.id == "trade-show":  # back at the office, the visitor reads on: t.js on our site, sent now
            key = self.sources["web"]["credentials"]["write_key"]
            for i, path in enumerate(("/booth", "/pricing") if p.good or p.junk else ("/booth",)):
                body = {
                    "writeKey": key,
                    "type": "page",
                    "anonymousId": p.anonymous_id,
                    "messageId": f"demo-{self.seed}-{p.n}-w{i}",
                    "url": f"{SITE}{path}",
                    "title": path,
                }
                await self.call(
                    "POST", f"{ingest}/v1/collect", content=json.dumps(body), headers={"content-type": "text/plain"}
                )
        elif p.good or p.junk or rng.random() < 0.3:  # they look at pricing, anonymously, before asking
            views = [
                self.page(p, tagged(f"{SITE}/pricing", plan), self.later(p, rng, 2, 72), 10 + i)
                for i in range(rng.randint(1, 3))
            ]
            if rng.random() < 0.1:
                views.append(self.page(p, f"{SITE}/careers", self.later(p, rng, 0.1, 1), 20))
            await self.segment(views)
        if p.good or p.junk:
            await self.demo_request(p, rng)
        else:  # identified, not (yet) interested
            await self.segment(
                [
                    {
                        "type": "identify",
                        "anonymousId": p.anonymous_id,
                        "userId": f"u-{self.seed}-{p.n}",
                        "messageId": f"demo-{self.seed}-{p.n}-i",
                        "timestamp": iso(self.later(p, rng, 1, 48)),
                        "traits": {"email": p.email, **p.attributes()},
                    }
                ]
            )

    async def email(self, p: Person, rng: random.Random, i: int, *, click: bool) -> None:
        plan = p.campaign
        opened = self.later(p, rng, 0, 24 * 7)
        link = tagged(f"{SITE}/{'webinar' if plan.id == 'webinar-q4' else 'blog'}", plan)
        if plan.id == "webinar-q4":
            base = {
                "email": p.email,
                "sg_message_id": f"demo{self.seed}-{p.n}-{i}.filter0001",
                "category": [plan.id],
                "utm_campaign": plan.id,
                "utm_source": plan.utm_source,
            }
            events = [
                {
                    **base,
                    "event": "open",
                    "timestamp": int(opened.timestamp()),
                    "sg_event_id": f"demo-{self.seed}-{p.n}-{i}-o",
                    "useragent": "Mozilla/5.0 (Windows NT 10.0)",
                }
            ]
            if click:
                at = self.later(p, rng, 0.01, 2)
                events.append(
                    {
                        **base,
                        "event": "click",
                        "timestamp": int(at.timestamp()),
                        "url": link,
                        "sg_event_id": f"demo-{self.seed}-{p.n}-{i}-c",
                        "useragent": "Mozilla/5.0 (Macintosh)",
                    }
                )
            body = json.dumps(events).encode()
            url = f"{self.urls.ingest}/v1/webhooks/sendgrid/{self.sources['sendgrid']['id']}"
            await self.call("POST", url, content=body, headers=sendgrid_headers(self.sendgrid_key, body))
            return
        kinds = [("opened", opened)] + ([("clicked", self.later(p, rng, 0.01, 2))] if click else [])
        for kind, at in kinds:
            data = {
                "event": kind,
                "id": f"demo-{self.seed}-{p.n}-{i}-{kind}",
                "timestamp": at.timestamp(),
                "recipient": p.email,
                "url": link if kind == "clicked" else None,
                "user-variables": {"campaign_id": plan.id, **utm(plan)},
                "client-info": {"user-agent": "Mozilla/5.0 (iPhone)"},
                "message": {"headers": {"message-id": f"demo{self.seed}.{p.n}.{i}@mg.example"}},
            }
            posted = {"signature": mailgun_signature(self.mailgun_key), "event-data": data}
            url = f"{self.urls.ingest}/v1/webhooks/mailgun/{self.sources['mailgun']['id']}"
            await self.call("POST", url, json=posted)

    async def demo_request(self, p: Person, rng: random.Random) -> None:
        at = self.later(p, rng, 1, 96)
        hidden = {
            "email": p.email,
            "anonymous_id": p.anonymous_id,
            "campaign_id": p.campaign.id,
            **utm(p.campaign),
            **{k: str(v) for k, v in p.attributes().items()},
        }
        payload = {
            "event_id": f"demo-{self.seed}-{p.n}-demo",
            "event_type": "form_response",
            "form_response": {
                "form_id": "demo",
                "token": f"t{self.seed}x{p.n}",
                "submitted_at": iso(at),
                "hidden": hidden,
                "definition": {"id": "demo", "title": "Request a demo", "fields": []},
                "answers": [
                    {"type": "email", "email": p.email, "field": {"id": "em1", "type": "email", "ref": "email"}},
                    {"type": "text", "text": p.title, "field": {"id": "ti1", "type": "short_text", "ref": "job_title"}},
                ],
            },
        }
        body = json.dumps(payload).encode()
        source = self.sources["typeform"]
        url = f"{self.urls.ingest}/v1/webhooks/typeform/{source['id']}"
        await self.call(
            "POST", url, content=body, headers=typeform_headers(source["credentials"]["signing_secret"], body)
        )

    # 3. sales work their queues with their own tokens

    async def person_of(self, lead_id: str) -> Person | None:
        if lead_id not in self.lead_of:
            lead = await self.call("GET", f"{self.urls.scoring}/v1/leads/{lead_id}", ok=(200, 404))
            emails = [s for s in strings(lead) if s in self.by_email]
            if not emails:
                return None
            self.lead_of[lead_id] = self.by_email[emails[0]]
        return self.lead_of[lead_id]

    async def moved(self, url: str, auth: dict[str, str], body: dict[str, Any] | None) -> bool:
        """A sales action; False when the assignment moved on first (409: breached and reassigned)."""
        async with self.limit:
            response = await self.http.post(url, headers=auth, json=body)
        if response.status_code not in (200, 409):
            raise RuntimeError(f"POST {url}: {response.status_code} {response.text[:300]}")
        return response.status_code == 200

    async def work_queue(self, rep: str, done: set[str]) -> int:
        if rep == "ghost":  # never opens the queue: every lead breaches the accept SLA and moves on
            return 0
        auth = {"authorization": f"Bearer {self.tokens[rep]}"}
        page = await self.call("GET", f"{self.urls.routing}/v1/queue?limit=200", headers=auth)
        acted = 0
        for a in page["assignments"]:
            if a["id"] in done:
                continue
            done.add(a["id"])
            acted += 1
            person = await self.person_of(a["lead_id"])
            base = f"{self.urls.routing}/v1/assignments/{a['id']}"
            rng = random.Random(f"{self.seed}:{person.n if person else a['lead_id']}")
            if a["status"] != "assigned":
                continue
            if person is None or person.junk or rng.random() < 0.06:
                reason = person.junk if person and person.junk else rng.choice(("bad_timing", "no_budget"))
                if await self.moved(f"{base}/reject", auth, {"reason": reason, "note": "demo"}):
                    self.summary["rejected"] += 1
                continue
            if not await self.moved(f"{base}/accept", auth, None):
                continue  # the SLA sweep took it away first
            self.summary["accepted"] += 1
            steps = ["contacted"]
            steps += ["meeting_booked", "qualified", "opportunity_created"] if person.good else []
            steps += ["disqualified"] if not person.good and rng.random() < 0.4 else []
            for step in steps:
                await self.call("POST", f"{base}/disposition", headers=auth, json={"disposition": step}, ok=(200, 409))
            if person.good and await self.close_deal(person):
                self.won_by_lead[a["lead_id"]] = f"demo-{self.seed}-deal-{person.n}"
        return acted

    async def close_deal(self, p: Person) -> bool:
        """The CRM posts the deal's creation and its close; True when it was won."""
        last = max(p.touches) if p.touches else p.start
        created = min(last + timedelta(days=2), self.world.now - timedelta(minutes=2))
        closed = min(last + timedelta(days=random.Random(p.n).uniform(5, 25)), self.world.now - timedelta(minutes=1))
        if last >= self.world.now - timedelta(minutes=5):  # met during the run (the booth): closes right away
            created = closed = datetime.now(UTC)
        deal = {
            "deal_id": f"demo-{self.seed}-deal-{p.n}",
            "name": f"{p.company.name} platform",
            "amount": str(Decimal(p.amount)),
            "currency": "USD",
            "contact_email": p.email,
            "company": p.company.name,
            "source_system": "demo-crm",
        }
        events = [{"type": "leadflow.deal.created.v1", **deal, "stage": "qualified", "occurred_at": iso(created)}]
        if p.wins:
            events.append(
                {"type": "leadflow.deal.closed_won.v1", **deal, "stage": "closedwon", "occurred_at": iso(closed)}
            )
            self.summary["won"] += 1
            self.summary["won_revenue"] += p.amount
        else:
            events.append(
                {
                    "type": "leadflow.deal.closed_lost.v1",
                    **deal,
                    "stage": "closedlost",
                    "occurred_at": iso(closed),
                    "reason": "chose a competitor",
                }
            )
            self.summary["lost"] += 1
        await self.native("crm", "/v1/deals", events)
        return p.wins

    async def sales(self) -> None:
        done: set[str] = set()
        task = self.progress.add_task("sales working their queues", total=None) if self.progress else None
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < self.settle_s:
            acted = sum(await asyncio.gather(*(self.work_queue(r, done) for r in self.tokens)))
            if acted:
                quiet_since = time.monotonic()
                if self.progress is not None and task is not None:
                    self.progress.advance(task, acted)
            await asyncio.sleep(1)

    async def run(self) -> dict[str, Any]:
        try:
            await self.set_up()
            await self.steps("a quarter of signals", self.world.people)
            await self.sales()
            self.summary["rep_token"] = self.tokens.get("hanna", "")
        finally:
            await self.http.aclose()
        return self.summary


def strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def what_to_open(urls: Urls, summary: dict[str, Any]) -> str:
    links = [
        (f"{urls.reporting}/dashboard", "the marketing lead's morning page"),
        (f"{urls.reporting}/v1/reports/attribution?by=campaign", "revenue per campaign, every model"),
        (f"{urls.reporting}/v1/reports/roi?by=campaign&model=w_shaped", "ROI per campaign"),
        (f"{urls.reporting}/v1/reports/scorecards/sales?by=rep", "who accepts, who breaches the SLA (ghost)"),
        (f"{urls.scoring}/v1/leads?stage=mql", "current MQLs with their scores"),
        (f"{urls.scoring}/v1/icp", "the ideal customer profile from won revenue"),
        (f"{urls.routing}/docs", "the sales API (users demo-<rep>; tokens are shown once, at creation)"),
    ]
    width = max(len(url) for url, _ in links) + 2
    lines = "\n".join(f"  {url:<{width}}{what}" for url, what in links)
    return (
        f"\nDone: {summary['accepted']} leads accepted, {summary['rejected']} rejected, {summary['won']} deals won "
        f"(${summary['won_revenue']:,}), {summary['lost']} lost. Reporting catches up within seconds.\n\n"
        f"Open:\n{lines}\n\n"
        "Try the sales API as rep hanna (EMEA):\n"
        f"  T='authorization: Bearer {summary.get('rep_token', '')}'\n"
        f"  curl -s '{urls.routing}/v1/queue' -H \"$T\"\n"
        f"  curl -s '{urls.routing}/v1/leads/<lead id>/brief' -H \"$T\"\n"
    )


def run_demo(urls: Urls, admin_token: str, seed: int, scale: int, settle_s: float = 45) -> dict[str, Any]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns) as progress:
        demo = Demo(urls, admin_token, seed, scale, settle_s=settle_s, progress=progress)
        summary = asyncio.run(demo.run())
    sys.stdout.write(what_to_open(urls, summary))
    sys.stdout.flush()
    return summary
