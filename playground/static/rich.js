// Rich messages (Bot API 10.1) on the playground page, the way a Telegram user reads them.
// A message's (or draft's) "rich" field holds the blocks the emulator stored; they are built
// here into DOM nodes with textContent only, never HTML: headings, nested lists, tables, code
// with its language, math as readable text (its LaTeX in the title), quotes, collapsible
// details, and a draft's thinking block. Any /command in a message, rich or not, is a link that
// sends that command. Expandable quotes (a private answer's folded thinking) open on a click.
"use strict";

(() => {
  const make = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };

  // LaTeX as readable text: the common symbols, fractions, roots, sub- and superscripts.
  const SYMBOLS = {
    alpha: "α", beta: "β", gamma: "γ", delta: "δ", epsilon: "ε", theta: "θ", lambda: "λ",
    mu: "μ", pi: "π", sigma: "σ", tau: "τ", phi: "φ", omega: "ω", Delta: "Δ", Sigma: "Σ",
    Omega: "Ω", Pi: "Π", infty: "∞", int: "∫", sum: "∑", prod: "∏", cdot: "·", times: "×",
    div: "÷", pm: "±", le: "≤", leq: "≤", ge: "≥", geq: "≥", ne: "≠", neq: "≠", approx: "≈",
    to: "→", rightarrow: "→", leftarrow: "←", Rightarrow: "⇒", in: "∈", partial: "∂",
    nabla: "∇", forall: "∀", exists: "∃", ldots: "…", cdots: "⋯", circ: "∘", deg: "°",
  };
  const LETTERS = new Set(["alpha", "beta", "gamma", "delta", "epsilon", "theta", "lambda", "mu",
    "pi", "sigma", "tau", "phi", "omega", "Delta", "Sigma", "Omega", "Pi", "infty", "partial"]);
  const SUP = { 0: "⁰", 1: "¹", 2: "²", 3: "³", 4: "⁴", 5: "⁵", 6: "⁶", 7: "⁷", 8: "⁸", 9: "⁹",
    "+": "⁺", "-": "⁻", "=": "⁼", "(": "⁽", ")": "⁾", n: "ⁿ", i: "ⁱ" };
  const SUB = { 0: "₀", 1: "₁", 2: "₂", 3: "₃", 4: "₄", 5: "₅", 6: "₆", 7: "₇", 8: "₈", 9: "₉",
    "+": "₊", "-": "₋", "=": "₌", "(": "₍", ")": "₎" };

  function script(text, table, mark) {
    const chars = [...text];
    return chars.every((c) => table[c]) ? chars.map((c) => table[c]).join("") : `${mark}(${text})`;
  }

  function readableMath(latex) {
    let text = latex;
    for (let i = 0; i < 5; i++) {
      const before = text;
      text = text
        .replace(/\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}/g, (_, a, b) => `(${a})/(${b})`)
        .replace(/\\sqrt\{([^{}]*)\}/g, (_, a) => `√(${a})`)
        .replace(/\\(?:text|mathrm|mathbf|operatorname)\{([^{}]*)\}/g, "$1");
      if (text === before) break;
    }
    text = text
      // A letter's command eats the space after it ("\\pi r" is πr); an operator's keeps it.
      .replace(/\\([A-Za-z]+)( ?)/g, (whole, name, space) => {
        if (!Object.hasOwn(SYMBOLS, name)) return whole; // not "constructor" and the like
        return SYMBOLS[name] + (LETTERS.has(name) ? "" : space);
      })
      .replace(/\\[,;:!]/g, " ")
      .replace(/\^\{([^{}]*)\}|\^(\S)/g, (_, a, b) => script(a ?? b, SUP, "^"))
      .replace(/_\{([^{}]*)\}|_(\S)/g, (_, a, b) => script(a ?? b, SUB, "_"))
      .replace(/\(([^()\s]+)\)\/\(([^()\s]+)\)/g, "$1/$2")
      .replace(/[{}]/g, "");
    return text.replace(/[ \t]+/g, " ").trim();
  }

  function math(latex, block) {
    const node = make(block ? "div" : "span", block ? "math math-block" : "math", readableMath(latex));
    node.title = latex;
    return node;
  }

  function command(text, onCommand) {
    const link = make("a", "command", text);
    link.href = "#";
    link.addEventListener("click", (event) => {
      event.preventDefault();
      onCommand(text.split("@")[0]);
    });
    return link;
  }

  const COMMAND = /(^|[^\w/\\])(\/[A-Za-z0-9_]{1,32}(?:@\w+)?)(?![\w/])/g;

  // A string with any /commands in it as command links.
  function textWithCommands(text, onCommand) {
    const out = document.createDocumentFragment();
    let at = 0;
    for (const found of text.matchAll(COMMAND)) {
      const start = found.index + found[1].length;
      if (start > at) out.append(text.slice(at, start));
      out.append(command(found[2], onCommand));
      at = start + found[2].length;
    }
    if (at < text.length) out.append(text.slice(at));
    return out;
  }

  const MARKS = { bold: "b", italic: "i", underline: "u", strikethrough: "s", marked: "mark",
    subscript: "sub", superscript: "sup" };

  function richText(value, onCommand) {
    if (value === null || value === undefined) return document.createTextNode("");
    if (typeof value === "string") return textWithCommands(value, onCommand);
    if (Array.isArray(value)) {
      const out = document.createDocumentFragment();
      for (const part of value) out.append(richText(part, onCommand));
      return out;
    }
    const kind = value.type;
    if (kind === "mathematical_expression") return math(String(value.expression || ""), false);
    if (kind === "bot_command") return command(String(value.bot_command || plain(value.text)), onCommand);
    if (kind === "code") return make("code", "", plain(value.text));
    let node;
    if (MARKS[kind]) node = make(MARKS[kind]);
    else if (kind === "spoiler") node = make("span", "spoiler");
    else if (kind === "url" && /^https?:|^tg:/.test(String(value.url || ""))) {
      node = make("a");
      node.href = String(value.url);
      node.target = "_blank";
      node.rel = "noopener";
    } else node = make("span");
    node.append(richText(value.text, onCommand));
    return node;
  }

  function plain(value) {
    if (typeof value === "string") return value;
    if (Array.isArray(value)) return value.map(plain).join("");
    if (value && typeof value === "object") return value.expression || plain(value.text);
    return "";
  }

  function listNode(block, onCommand) {
    const items = block.items || [];
    const ordered = items.length && items[0].value !== undefined;
    const list = make(ordered ? "ol" : "ul", "rich-list");
    if (ordered) list.start = items[0].value;
    for (const item of items) {
      const li = make("li");
      if (ordered) li.value = item.value;
      if (item.has_checkbox) {
        const box = make("input");
        box.type = "checkbox";
        box.checked = Boolean(item.is_checked);
        box.disabled = true;
        li.classList.add("task");
        li.append(box);
      }
      li.append(blocks(item.blocks || [], onCommand));
      list.append(li);
    }
    return list;
  }

  function tableNode(block, onCommand) {
    const wrap = make("div", "rich-table");
    const table = make("table");
    if (block.is_bordered) table.className = "bordered";
    for (const row of block.cells || []) {
      const tr = make("tr");
      for (const cell of row) {
        const td = make(cell.is_header ? "th" : "td");
        td.style.textAlign = ["left", "center", "right"].includes(cell.align) ? cell.align : "left";
        if (cell.colspan > 1) td.colSpan = cell.colspan;
        if (cell.rowspan > 1) td.rowSpan = cell.rowspan;
        td.append(richText(cell.text, onCommand));
        tr.append(td);
      }
      table.append(tr);
    }
    wrap.append(table);
    return wrap;
  }

  function block(b, onCommand) {
    switch (b.type) {
      case "paragraph": {
        const p = make("p");
        p.append(richText(b.text, onCommand));
        return p;
      }
      case "heading": {
        const h = make(`h${Math.min(Math.max(Number(b.size) || 3, 1), 6)}`, "rich-heading");
        h.append(richText(b.text, onCommand));
        return h;
      }
      case "pre": {
        const pre = make("pre", "rich-pre");
        if (b.language) pre.dataset.language = b.language; // style.css labels it
        const code = make("code", b.language ? `language-${b.language}` : "", plain(b.text));
        pre.append(code);
        return pre;
      }
      case "mathematical_expression":
        return math(String(b.expression || ""), true);
      case "list":
        return listNode(b, onCommand);
      case "table":
        return tableNode(b, onCommand);
      case "blockquote":
      case "pullquote": {
        const quote = make("blockquote");
        quote.append(blocks(b.blocks || [{ type: "paragraph", text: b.text }], onCommand));
        return quote;
      }
      case "expandable_blockquote": {
        const quote = make("blockquote", "expandable");
        quote.append(blocks(b.blocks || [{ type: "paragraph", text: b.text }], onCommand));
        return quote;
      }
      case "details": {
        const details = make("details", "rich-details");
        details.open = Boolean(b.is_open);
        const summary = make("summary");
        summary.append(richText(b.summary, onCommand));
        details.append(summary, blocks(b.blocks || [], onCommand));
        return details;
      }
      case "thinking": {
        const thinking = make("div", "rich-thinking");
        thinking.append(make("span", "thinking-label", "Thinking…"));
        const text = make("div", "thinking-text");
        text.append(richText(b.text, onCommand));
        thinking.append(text);
        return thinking;
      }
      case "divider":
        return make("hr");
      default: {
        const p = make("p");
        p.append(richText(b.text, onCommand));
        return p;
      }
    }
  }

  function blocks(list, onCommand) {
    const out = document.createDocumentFragment();
    for (const b of list) out.append(block(b, onCommand));
    return out;
  }

  // The blocks of a rich message as one node.
  function render(list, onCommand) {
    const root = make("div", "rich");
    root.append(blocks(list || [], onCommand));
    return root;
  }

  // After the server's HTML is in: /commands become links (outside code), command entities
  // too, and expandable quotes fold until clicked.
  function enhance(root, onCommand) {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    const found = [];
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (node.parentElement.closest("pre, code, a, .command")) continue;
      COMMAND.lastIndex = 0;
      if (COMMAND.test(node.data)) found.push(node);
    }
    for (const node of found) node.replaceWith(textWithCommands(node.data, onCommand));
    for (const span of root.querySelectorAll("span.command")) {
      span.replaceWith(command(span.textContent, onCommand));
    }
    for (const quote of root.querySelectorAll("blockquote.expandable")) {
      quote.classList.add("folded");
      quote.title = "Show all";
      quote.addEventListener("click", () => quote.classList.toggle("folded"));
    }
    return root;
  }

  window.VeilRich = { render, enhance, readableMath };
})();
