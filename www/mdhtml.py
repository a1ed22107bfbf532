"""The small Markdown subset of docs/SETUP.md as HTML, for the web UI's help page (/help/setup):
headings (with ids), paragraphs, bullet lists, tables, code blocks, `code`, **bold** and links.
A list item that starts with a **bold label** gets the label's id (its slug), so the integration
form links to each value: /help/setup#microsoft-partner-account-id. Used by www/embed.py."""
import html
import re


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def inline(text):
    out = html.escape(text, quote=True)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    # Links: absolute ones stay links; a link to another file of the repository is its text.
    out = re.sub(r"\[([^\]]+)\]\((https?://[^)\s]+)\)", r'<a href="\2" rel="noopener">\1</a>', out)
    out = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r"\1", out)
    return out


def convert(md):
    lines = md.split("\n")
    out, para, i = [], [], 0

    def flush():
        if para:
            out.append("<p>%s</p>" % inline(" ".join(para)))
            para.clear()

    while i < len(lines):
        line = lines[i]
        if not line.strip():
            flush()
            i += 1
        elif line.startswith("#"):
            flush()
            level = len(line) - len(line.lstrip("#"))
            text = line[level:].strip()
            out.append('<h%d id="%s">%s</h%d>' % (level, slug(text), inline(text), level))
            i += 1
        elif line.startswith("```") or line.startswith("    "):
            flush()
            block = []
            if line.startswith("```"):
                i += 1
                while i < len(lines) and not lines[i].startswith("```"):
                    block.append(lines[i])
                    i += 1
                i += 1
            else:
                while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                    block.append(lines[i][4:])
                    i += 1
                while block and not block[-1].strip():
                    block.pop()
            out.append("<pre><code>%s</code></pre>" % html.escape("\n".join(block)))
        elif line.startswith("|"):
            flush()
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                    rows.append(cells)
                i += 1
            out.append('<div class="tablewrap"><table><thead><tr>%s</tr></thead><tbody>' %
                       "".join("<th>%s</th>" % inline(c) for c in rows[0]))
            for r in rows[1:]:
                out.append("<tr>%s</tr>" % "".join(
                    '<td data-label="%s">%s</td>' % (html.escape(h, quote=True), inline(c))
                    for h, c in zip(rows[0], r)))
            out.append("</tbody></table></div>")
        elif line.startswith("- "):
            flush()
            out.append("<ul>")
            while i < len(lines) and lines[i].startswith("- "):
                item = [lines[i][2:].strip()]
                i += 1
                while i < len(lines) and lines[i].startswith("  ") and lines[i].strip():
                    item.append(lines[i].strip())
                    i += 1
                text = " ".join(item)
                m = re.match(r"\*\*([^*]+)\*\*", text)
                ident = ' id="%s"' % slug(m.group(1)) if m else ""
                out.append("<li%s>%s</li>" % (ident, inline(text)))
            out.append("</ul>")
        else:
            para.append(line.strip())
            i += 1
    flush()
    return "\n".join(out)
