//! A manifest's `fields` as form controls. The rules come from the manifest, rendered into the page (`required`,
//! `min`, `max` and `data-` attributes for what HTML cannot say the way the server means it); one generic function
//! in `console.js` checks them with `setCustomValidity`, and the server checks them again
//! (`Manifest::validate_submission`, whose 400 names the field and is shown beside it).
//!
//! Lengths are counted in characters (Unicode scalar values) as the server counts them, so they are `data-`
//! attributes checked by the script rather than `minlength`/`maxlength`, which count UTF-16 units. A `pattern` is a
//! search, as on the server (JSON Schema semantics), never the whole-value match of HTML's `pattern`.

use plugboard_catalog::{Field, FieldType};

use super::markdown;

pub struct FieldView {
    pub key: String,
    /// The control's id: `field-<key>` (keys are letters, digits, `_` and `-`).
    pub id: String,
    pub label: String,
    /// `text`, `password`, `number`, `select` or `bool`.
    pub kind: &'static str,
    /// The `required` attribute: required with no default (a default satisfies a required field).
    pub required: bool,
    /// Shown as required in the label (also when a default fills it).
    pub marked_required: bool,
    /// The value the control starts with: the manifest's default, never a stored value (and never for a secret).
    pub value: String,
    pub placeholder: String,
    pub help_html: String,
    pub choices: Vec<Choice>,
    pub secret: bool,
    pub min_length: String,
    pub max_length: String,
    pub min: String,
    pub max: String,
    pub pattern: String,
    /// `aria-describedby`: the help (when there is one) and the error slot.
    pub described_by: String,
    pub checked: bool,
}

pub struct Choice {
    pub value: String,
    pub selected: bool,
}

fn number_text(n: f64) -> String {
    // `5` rather than `5.0`, as a person writes it.
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{n:.0}")
    } else {
        n.to_string()
    }
}

impl FieldView {
    /// A control for installing: defaults filled in.
    pub fn for_install(f: &Field) -> FieldView {
        Self::build(f, false)
    }

    /// A control for replacing an installed integration's values: empty (left empty means "keep"), never
    /// required, never showing a stored value.
    pub fn for_replace(f: &Field) -> FieldView {
        Self::build(f, true)
    }

    fn build(f: &Field, replacing: bool) -> FieldView {
        let id = format!("field-{}", f.key);
        let help_html = f
            .help
            .as_deref()
            .map(|h| markdown::render(h, 3))
            .unwrap_or_default();
        let mut described_by = String::new();
        if !help_html.is_empty() {
            described_by.push_str(&format!("{id}-help "));
        }
        described_by.push_str(&format!("{id}-error"));
        let default = f.default.clone().unwrap_or_default();
        let value = if replacing || f.secret || f.field_type == FieldType::Password {
            String::new()
        } else {
            default.clone()
        };
        let v = f.validation.clone().unwrap_or_default();
        let placeholder = if replacing {
            if f.secret {
                "Unchanged (write-only)".to_string()
            } else {
                "Unchanged".to_string()
            }
        } else {
            f.placeholder.clone().unwrap_or_default()
        };
        // Replacing a bool: unchanged, true or false (a checkbox cannot say "keep").
        let (kind, choices) = if replacing && f.field_type == FieldType::Bool {
            ("select", vec!["true".to_string(), "false".to_string()])
        } else {
            (f.field_type.as_str(), f.choices.clone())
        };
        FieldView {
            key: f.key.clone(),
            id,
            label: f.label.clone(),
            kind,
            required: !replacing && f.required && f.default.is_none(),
            marked_required: !replacing && f.required,
            placeholder,
            help_html,
            choices: choices
                .iter()
                .map(|c| Choice {
                    value: c.clone(),
                    selected: !replacing && *c == default,
                })
                .collect(),
            secret: f.secret,
            min_length: v.min_length.map(|n| n.to_string()).unwrap_or_default(),
            max_length: v.max_length.map(|n| n.to_string()).unwrap_or_default(),
            min: v.min.map(number_text).unwrap_or_default(),
            max: v.max.map(number_text).unwrap_or_default(),
            pattern: v
                .pattern
                .as_ref()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
            described_by,
            checked: !replacing && default == "true",
            value,
        }
    }

    /// The `type` of an `<input>` for text-like kinds.
    pub fn input_type(&self) -> &'static str {
        match self.kind {
            "password" => "password",
            "number" => "number",
            _ => "text",
        }
    }

    /// `autocomplete`: secrets are never offered from or saved to the browser's form history.
    pub fn autocomplete(&self) -> &'static str {
        if self.secret || self.kind == "password" {
            "new-password"
        } else {
            "off"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(fields: &str) -> plugboard_catalog::Manifest {
        (*plugboard_catalog::parse_manifest(
            "t.yaml",
            &format!("id: t\nname: T\nauth_mode: pat\nfields:\n{fields}\nmcp: {{transport: stdio, command: x}}\n"),
        )
        .unwrap()
        .manifest()
        .unwrap())
        .clone()
    }

    #[test]
    fn the_rules_of_the_manifest_become_attributes_and_secrets_never_a_value() {
        let m = manifest(
            "  - {key: token, label: Token, type: password, required: true, default: ghp_d3fault0, validation: {pattern: '^ghp_', min_length: 10}}\n\
             \x20 - {key: port, label: Port, type: number, required: true, default: '5432', validation: {min: 1, max: 65535.5}}\n\
             \x20 - {key: mode, label: Mode, type: select, choices: [a, b], default: b}",
        );
        let token = FieldView::for_install(&m.fields[0]);
        assert_eq!(token.value, "", "a password never has a value");
        assert!(!token.required, "a default satisfies a required field");
        assert!(token.marked_required);
        assert_eq!(token.pattern, "^ghp_");
        assert_eq!(token.min_length, "10");
        let port = FieldView::for_install(&m.fields[1]);
        assert_eq!(
            (port.value.as_str(), port.min.as_str(), port.max.as_str()),
            ("5432", "1", "65535.5")
        );
        let mode = FieldView::for_install(&m.fields[2]);
        assert!(mode.choices[1].selected && !mode.choices[0].selected);
        let replace = FieldView::for_replace(&m.fields[1]);
        assert!(replace.value.is_empty() && !replace.required);
    }
}
