"""Answers render as Markdown, and no text, the model's or the user's, can run script or add
markup of its own. The echo engine repeats the message, so each probe is rendered twice: once
as the user's message and once as the model's answer, live and again from history."""

from __future__ import annotations

from playwright.sync_api import Dialog, Request, expect

from tests.web.conftest import Chat

MARKDOWN = """Here is **bold** and `inline code`.

```python
def greet(name):
    return f"hi {name}"
```

- first point
- second point

1. one
2. two

See [the docs](https://example.com/docs) or mail [us](mailto:help@example.com).

| a | b |
| - | - |
| 1 | 2 |"""

PROBES = """<script>window.__pwned = 'script'</script>
<img src="x-planted.png" onerror="window.__pwned = 'img'">
<svg onload="window.__pwned = 'svg'"><circle r="5"/></svg>
<iframe src="javascript:window.__pwned = 'iframe'"></iframe>
<a href="javascript:window.__pwned = 'raw link'">raw link</a>
<style>body { display: none }</style>
<form action="https://example.com"><button>planted button</button></form>

[markdown link](javascript:window.__pwned='markdown link')
[data link](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)
[spaced](  JaVaScRiPt:window.__pwned='spaced')
![planted image](https://example.com/x.png "onerror=window.__pwned='image'")
<https://example.com/ok> and <b onmouseover="window.__pwned='b'">hover me</b>"""

CHECK_DOM = """() => {
  const bodies = [...document.querySelectorAll('#messages .msg-body')];
  const found = [];
  for (const body of bodies) {
    for (const node of body.querySelectorAll('*')) {
      const tag = node.tagName.toLowerCase();
      if (['script', 'img', 'svg', 'iframe', 'style', 'form', 'object', 'embed'].includes(tag)) {
        found.push('tag ' + tag);
      }
      if (tag === 'button' && !node.classList.contains('copy-code')) found.push('foreign button');
      for (const attr of node.attributes) {
        if (attr.name.startsWith('on')) found.push('handler ' + attr.name + ' on ' + tag);
        if (attr.name === 'style') found.push('style on ' + tag);
      }
      if (tag === 'a' && node.hasAttribute('href')
          && !/^(https?:|mailto:)/i.test(node.getAttribute('href'))) {
        found.push('link to ' + node.getAttribute('href'));
      }
    }
  }
  return {found, pwned: window.__pwned ?? null};
}"""


def test_answers_render_markdown(chat: Chat) -> None:
    chat.open()
    answer = chat.ask(MARKDOWN).locator(".msg-body")
    expect(answer.locator("strong")).to_have_text("bold")
    expect(answer.locator("p code")).to_have_text("inline code")
    code = answer.locator("pre code")
    expect(code).to_have_class("language-python")
    expect(code).to_contain_text('def greet(name):\n    return f"hi {name}"')
    expect(answer.locator("pre").get_by_role("button", name="Copy code")).to_be_visible()
    expect(answer.locator("pre .code-lang")).to_have_text("python")
    expect(answer.locator("ul > li")).to_have_text(["first point", "second point"])
    expect(answer.locator("ol > li")).to_have_text(["one", "two"])
    expect(answer.locator("table td")).to_have_text(["1", "2"])

    docs = answer.get_by_role("link", name="the docs")
    expect(docs).to_have_attribute("href", "https://example.com/docs")
    expect(docs).to_have_attribute("target", "_blank")
    rel = (docs.get_attribute("rel") or "").split()
    assert {"noopener", "noreferrer"} <= set(rel)
    expect(answer.get_by_role("link", name="us")).to_have_attribute(
        "href", "mailto:help@example.com"
    )
    # The user's own message is rendered the same way.
    expect(chat.messages.first.locator(".msg-body pre code")).to_have_class("language-python")


def test_planted_markup_never_runs(chat: Chat) -> None:
    dialogs: list[str] = []
    outside: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    def on_request(request: Request) -> None:
        if not request.url.startswith(chat.url):
            outside.append(request.url)

    chat.page.on("dialog", on_dialog)
    chat.page.on("request", on_request)
    chat.open()
    answer = chat.ask(PROBES)

    for rendered in (chat.messages.first, answer):
        body = rendered.locator(".msg-body")
        # Raw HTML is shown as the text it is, never as markup.
        expect(body).to_contain_text("<script>window.__pwned = 'script'</script>")
        expect(body).to_contain_text('<img src="x-planted.png"')
        expect(body.get_by_text("markdown link")).to_be_visible()
        expect(body.get_by_role("link", name="markdown link")).to_have_count(0)
        expect(body.get_by_role("link", name="data link")).to_have_count(0)
        expect(body.get_by_role("link", name="spaced")).to_have_count(0)
        # A Markdown image becomes a plain link: nothing is fetched from the model's URL.
        image_link = body.get_by_role("link", name="planted image")
        expect(image_link).to_have_attribute("href", "https://example.com/x.png")
        expect(image_link).to_have_attribute("rel", "noopener noreferrer nofollow")
        expect(body.get_by_role("link", name="https://example.com/ok")).to_be_visible()

    # Poke the planted links and text the way a curious reader would.
    for name in ("markdown link", "spaced", "raw link", "hover me"):
        chat.page.locator("#messages .msg-body").get_by_text(name).first.click()
    chat.page.locator("#messages .msg-body").get_by_text("hover me").first.hover()

    result = chat.page.evaluate(CHECK_DOM)
    assert result == {"found": [], "pwned": None}
    assert dialogs == [] and outside == []
    expect(chat.page.locator("body")).to_be_visible()
    # Titles are text too: the conversation took its title from the planted message.
    expect(chat.page.locator("#chat-title")).to_contain_text("<script>")
    assert (
        chat.page.locator("#chat-title, #session-list").evaluate_all(
            "els => els.flatMap(el => [...el.querySelectorAll('script, img, iframe')]).length"
        )
        == 0
    )

    # The same text, read back from history after a reload, is just as inert.
    chat.page.reload()
    chat.wait_ready()
    expect(chat.messages).to_have_count(2)
    assert chat.page.evaluate(CHECK_DOM) == {"found": [], "pwned": None}
    assert dialogs == [] and outside == []
