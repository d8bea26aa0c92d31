//! Finding things the way a person (or a screen reader) does: a form control by the text of its `<label>`, a
//! button or a link by its name, and what the page announces in `role="status"` / `role="alert"` regions.
//!
//! Names are the accessible names Chromium computes (WebDriver "Get Computed Label"), compared exactly after
//! collapsing whitespace: `aria-hidden` decorations such as a required-field star do not count, text in `::before`
//! does. Only visible elements count. A name that matches two elements is an error: scope the search with the
//! `*_within` helpers (e.g. to the table row of one integration, found with [`Browser::element_containing`]).

use std::cell::{Cell, RefCell};

use fantoccini::elements::Element;
use fantoccini::key::Key;
use serde_json::{json, Value as Json};

use super::commands::Raw;
use super::{element_from_json, Browser};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Field,
    Button,
    Link,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Field => "form control",
            Kind::Button => "button",
            Kind::Link => "link",
        }
    }

    fn selector(self) -> &'static str {
        match self {
            Kind::Field => {
                "input:not([type=hidden]):not([type=button]):not([type=submit]):not([type=reset]):not([type=image]), \
                 select, textarea"
            }
            Kind::Button => {
                "button, input[type=button], input[type=submit], input[type=reset], input[type=image], [role=button]"
            }
            Kind::Link => "a[href], [role=link]",
        }
    }
}

/// Visible candidates of a kind under `root` (or the document), each with whether it has a `<label>`. With
/// `all = false`, only those whose label, text, `aria-label`, `title`, `alt`, `placeholder` or `aria-labelledby`
/// text contains the wanted name (case-insensitively): a cheap filter before asking Chromium for exact names.
const CANDIDATES_JS: &str = r#"
const [root, selector, wanted, all] = arguments;
const scope = root || document;
const norm = s => (s || '').replace(/\s+/g, ' ').trim().toLowerCase();
const w = norm(wanted);
const rough = el => {
  const parts = [el.textContent, el.getAttribute('aria-label'), el.getAttribute('title'), el.getAttribute('alt'),
                 el.getAttribute('placeholder')];
  if (el.tagName === 'INPUT' && ['button', 'submit', 'reset'].includes(el.type)) parts.push(el.value || el.type);
  for (const label of (el.labels || [])) parts.push(label.textContent);
  for (const id of (el.getAttribute('aria-labelledby') || '').split(/\s+/)) {
    const ref = id && document.getElementById(id);
    if (ref) parts.push(ref.textContent);
  }
  return norm(parts.join(' '));
};
return [...scope.querySelectorAll(selector)]
  .filter(el => el.checkVisibility({ visibilityProperty: true }))
  .filter(el => all || rough(el).includes(w))
  .slice(0, 60)
  .map(el => ({ el, labelled: !!(el.labels && el.labels.length) }));
"#;

const ANNOUNCEMENTS_JS: &str = r#"
return [...document.querySelectorAll('[role=status], [role=alert], output')]
  .filter(el => el.checkVisibility({ visibilityProperty: true }))
  .map(el => ({ role: el.getAttribute('role') || 'status', text: el.innerText.replace(/\s+/g, ' ').trim() }));
"#;

const CONTAINING_JS: &str = r#"
const [selector, text] = arguments;
const matches = [...document.querySelectorAll(selector)]
  .filter(el => el.checkVisibility() && el.innerText.replace(/\s+/g, ' ').includes(text));
// The innermost ones: a row inside a matching table is what a person means, not the table.
return matches.filter(el => !matches.some(other => other !== el && el.contains(other)));
"#;

/// A live-region message on the page: `role` is `status` (success) or `alert` (failure).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Announcement {
    pub role: String,
    pub text: String,
}

enum Miss {
    /// Not there (yet): keep waiting.
    NotYet(String),
    /// There but wrong in a way waiting cannot fix.
    Wrong(String),
}

fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Browser {
    // ----- form controls -----

    /// The form control whose `<label>` names it `label`; waits for it to appear. Panics when the only control
    /// with that name has no `<label>` (an `aria-label` alone does not satisfy the spec).
    pub async fn field(&self, label: &str) -> Element {
        self.wait_for(None, Kind::Field, label).await
    }

    /// As [`Browser::field`], searching only inside `root`.
    pub async fn field_within(&self, root: &Element, label: &str) -> Element {
        self.wait_for(Some(root), Kind::Field, label).await
    }

    /// Whether a visible control named `label` is on the page now (no waiting).
    pub async fn has_field(&self, label: &str) -> bool {
        self.find_once(None, Kind::Field, label).await.is_ok()
    }

    /// Types `value` into the control labelled `label`, replacing what it held (as a person selecting all and
    /// typing: the page sees key events, so browser validation such as `minlength` applies).
    pub async fn fill(&self, label: &str, value: &str) {
        let el = self.field(label).await;
        el.clear()
            .await
            .unwrap_or_else(|e| panic!("cannot clear the field {label:?}: {e}"));
        el.send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("cannot type into the field {label:?}: {e}"));
    }

    /// Chooses the option whose visible text is `option` in the `<select>` labelled `label`.
    pub async fn select(&self, label: &str, option: &str) {
        let el = self.field(label).await;
        el.select_by_label(option).await.unwrap_or_else(|e| {
            panic!("the list {label:?} has no option {option:?} that can be chosen: {e}")
        });
    }

    /// Ticks or clears the checkbox (or picks the radio button) labelled `label`.
    pub async fn set_checked(&self, label: &str, checked: bool) {
        let el = self.field(label).await;
        let now = el.is_selected().await.expect("checkbox state");
        if now != checked {
            el.click()
                .await
                .unwrap_or_else(|e| panic!("cannot click the checkbox {label:?}: {e}"));
        }
    }

    /// The current value of the control labelled `label`.
    pub async fn value_of(&self, label: &str) -> String {
        let el = self.field(label).await;
        el.prop("value")
            .await
            .expect("value property")
            .unwrap_or_default()
    }

    /// The browser's validation message for the control labelled `label` (empty when the value is valid): what a
    /// person sees when the browser refuses to send the form.
    pub async fn validation_message(&self, label: &str) -> String {
        let el = self.field(label).await;
        let value = self
            .execute(
                "return arguments[0].validationMessage;",
                vec![serde_json::to_value(&el).expect("element reference")],
            )
            .await;
        value.as_str().unwrap_or_default().to_string()
    }

    // ----- buttons and links -----

    /// The button named `name` (its text, or its label); waits for it to appear.
    pub async fn button(&self, name: &str) -> Element {
        self.wait_for(None, Kind::Button, name).await
    }

    /// As [`Browser::button`], searching only inside `root`.
    pub async fn button_within(&self, root: &Element, name: &str) -> Element {
        self.wait_for(Some(root), Kind::Button, name).await
    }

    /// Whether a visible button named `name` is on the page now (no waiting): e.g. a VIEWER sees no Install.
    pub async fn has_button(&self, name: &str) -> bool {
        self.find_once(None, Kind::Button, name).await.is_ok()
    }

    /// Clicks the button named `name` (WebDriver scrolls it into view and refuses if something covers it).
    pub async fn click_button(&self, name: &str) {
        let el = self.button(name).await;
        self.click(&el, Kind::Button, name).await;
    }

    /// Clicks the button named `name` inside `root`.
    pub async fn click_button_within(&self, root: &Element, name: &str) {
        let el = self.button_within(root, name).await;
        self.click(&el, Kind::Button, name).await;
    }

    /// The link named `name`; waits for it to appear.
    pub async fn link(&self, name: &str) -> Element {
        self.wait_for(None, Kind::Link, name).await
    }

    /// Whether a visible link named `name` is on the page now (no waiting).
    pub async fn has_link(&self, name: &str) -> bool {
        self.find_once(None, Kind::Link, name).await.is_ok()
    }

    /// Follows the link named `name`.
    pub async fn click_link(&self, name: &str) {
        let el = self.link(name).await;
        self.click(&el, Kind::Link, name).await;
    }

    /// The innermost visible element matching the CSS `selector` whose text contains `text` (e.g. the table row
    /// of one integration), to scope `*_within` searches. Waits for it; panics when several match.
    pub async fn element_containing(&self, selector: &str, text: &str) -> Element {
        let count = Cell::new(0usize);
        let count_ref = &count;
        let found = self
            .poll(|| async move {
                let value = self
                    .client
                    .execute(CONTAINING_JS, vec![json!(selector), json!(text)])
                    .await
                    .ok()?;
                let list = value.as_array().cloned().unwrap_or_default();
                count_ref.set(list.len());
                (list.len() == 1)
                    .then(|| element_from_json(&self.client, &list[0]))
                    .flatten()
            })
            .await;
        match found {
            Some(el) => el,
            None => panic!(
                "Expected one visible {selector:?} containing {text:?} on {}, found {}",
                self.url().await,
                count.get()
            ),
        }
    }

    /// The accessible name Chromium computes for `el`.
    pub async fn accessible_name(&self, el: &Element) -> String {
        let value = self.command(Raw::computed_label(&el.element_id())).await;
        normalize(value.as_str().unwrap_or_default())
    }

    /// The ARIA role Chromium computes for `el` (`button`, `textbox`, `status`, ...).
    pub async fn role_of(&self, el: &Element) -> String {
        let value = self.command(Raw::computed_role(&el.element_id())).await;
        value.as_str().unwrap_or_default().to_string()
    }

    // ----- keyboard -----

    /// Presses Tab in the focused element (keyboard-only use).
    pub async fn press_tab(&self) {
        self.press(Key::Tab).await;
    }

    /// Presses Enter in the focused element.
    pub async fn press_enter(&self) {
        self.press(Key::Enter).await;
    }

    async fn press(&self, key: Key) {
        let el = self
            .client
            .active_element()
            .await
            .expect("the focused element");
        el.send_keys(&char::from(key).to_string())
            .await
            .expect("press a key");
    }

    /// The accessible name of the focused element (what a screen reader says after Tab).
    pub async fn focused_name(&self) -> String {
        let el = self
            .client
            .active_element()
            .await
            .expect("the focused element");
        self.accessible_name(&el).await
    }

    // ----- live regions -----

    /// What the page announces now, in document order.
    pub async fn announcements(&self) -> Vec<Announcement> {
        let value = self.execute(ANNOUNCEMENTS_JS, vec![]).await;
        serde_json::from_value(value).expect("announcements")
    }

    /// Waits until a `role="status"` region's text contains `text`; returns that region's whole text.
    pub async fn wait_for_status(&self, text: &str) -> String {
        self.wait_for_announcement("status", text).await
    }

    /// Waits until a `role="alert"` region's text contains `text`; returns that region's whole text.
    pub async fn wait_for_alert(&self, text: &str) -> String {
        self.wait_for_announcement("alert", text).await
    }

    async fn wait_for_announcement(&self, role: &str, text: &str) -> String {
        let found = self
            .poll(|| async move {
                let value = self.client.execute(ANNOUNCEMENTS_JS, vec![]).await.ok()?;
                let list: Vec<Announcement> = serde_json::from_value(value).ok()?;
                list.into_iter()
                    .find(|a| a.role == role && a.text.contains(text))
                    .map(|a| a.text)
            })
            .await;
        match found {
            Some(t) => t,
            None => {
                let now = self.announcements().await;
                panic!(
                    "No role=\"{role}\" region said {text:?} within {:?} on {}. The page announces: {now:?}",
                    self.wait,
                    self.url().await,
                )
            }
        }
    }

    // ----- internals -----

    async fn click(&self, el: &Element, kind: Kind, name: &str) {
        if let Err(e) = el.click().await {
            panic!(
                "cannot click the {} {name:?} on {}: {e}",
                kind.noun(),
                self.url().await
            );
        }
    }

    async fn wait_for(&self, root: Option<&Element>, kind: Kind, name: &str) -> Element {
        let last = RefCell::new(String::new());
        let last_ref = &last;
        let found = self
            .poll(|| async move {
                match self.find_once(root, kind, name).await {
                    Ok(el) => Some(Ok(el)),
                    // Waiting cannot fix it: stop now.
                    Err(Miss::Wrong(m)) => Some(Err(m)),
                    Err(Miss::NotYet(m)) => {
                        *last_ref.borrow_mut() = m;
                        None
                    }
                }
            })
            .await;
        let url = self.url().await;
        match found {
            Some(Ok(el)) => el,
            Some(Err(message)) => panic!("{message} (on {url})"),
            None => panic!("{} (on {url}, waited {:?})", last.borrow(), self.wait),
        }
    }

    async fn find_once(
        &self,
        root: Option<&Element>,
        kind: Kind,
        name: &str,
    ) -> Result<Element, Miss> {
        let wanted = normalize(name);
        let root_json = match root {
            Some(el) => serde_json::to_value(el).expect("element reference"),
            None => Json::Null,
        };
        let candidates = self
            .candidates(&root_json, kind, name, false)
            .await
            .map_err(Miss::NotYet)?;
        let mut matches = Vec::new();
        for (el, labelled) in candidates {
            let Ok(label) = self
                .client
                .issue_cmd(Raw::computed_label(&el.element_id()))
                .await
            else {
                continue; // gone since the script ran
            };
            if normalize(label.as_str().unwrap_or_default()) == wanted {
                matches.push((el, labelled));
            }
        }
        match matches.len() {
            1 => {
                let (el, labelled) = matches.pop().expect("one match");
                if kind == Kind::Field && !labelled {
                    return Err(Miss::Wrong(format!(
                        "The form control named {name:?} has no <label>: every form control must have one \
                         (people-and-console.md, \"The console\")"
                    )));
                }
                Ok(el)
            }
            0 => {
                let names = self.names_of_all(&root_json, kind).await;
                Err(Miss::NotYet(format!(
                    "No visible {} named {name:?}{}. The visible {}s are named: {names:?}",
                    kind.noun(),
                    if root.is_some() {
                        " in the given element"
                    } else {
                        ""
                    },
                    kind.noun(),
                )))
            }
            n => Err(Miss::NotYet(format!(
                "{n} visible {}s are named {name:?}; scope the search with {}_within",
                kind.noun(),
                match kind {
                    Kind::Field => "field",
                    Kind::Button => "button",
                    Kind::Link => "link",
                }
            ))),
        }
    }

    async fn candidates(
        &self,
        root: &Json,
        kind: Kind,
        name: &str,
        all: bool,
    ) -> Result<Vec<(Element, bool)>, String> {
        let value = self
            .client
            .execute(
                CANDIDATES_JS,
                vec![
                    root.clone(),
                    json!(kind.selector()),
                    json!(name),
                    json!(all),
                ],
            )
            .await
            .map_err(|e| {
                format!(
                    "cannot search the page for a {} named {name:?}: {e}",
                    kind.noun()
                )
            })?;
        Ok(value
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|c| {
                        let el = element_from_json(&self.client, &c["el"])?;
                        Some((el, c["labelled"].as_bool().unwrap_or(false)))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn names_of_all(&self, root: &Json, kind: Kind) -> Vec<String> {
        let mut names = Vec::new();
        for (el, _) in self
            .candidates(root, kind, "", true)
            .await
            .unwrap_or_default()
        {
            if let Ok(label) = self
                .client
                .issue_cmd(Raw::computed_label(&el.element_id()))
                .await
            {
                names.push(normalize(label.as_str().unwrap_or_default()));
            }
        }
        names
    }
}
