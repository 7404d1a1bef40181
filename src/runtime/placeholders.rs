//! `{{static:NAME}}` in command lines.

use super::RuntimeError;

const OPEN: &str = "{{static:";
const CLOSE: &str = "}}";

/// Replaces every `{{static:NAME}}` in `command` with `path_of(NAME)`, the
/// asset's path as the command sees it. The path is inserted as is, not
/// quoted, so it can be used inside quotes the command already has.
pub(crate) fn expand_static(
    command: &str,
    names: impl Fn() -> Vec<String>,
    path_of: impl Fn(&str) -> Option<String>,
) -> Result<String, RuntimeError> {
    let mut out = String::with_capacity(command.len());
    let mut rest = command;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find(CLOSE) else { break };
        let name = after[..end].trim();
        let path = path_of(name).ok_or_else(|| RuntimeError::UnknownAsset {
            name: name.to_owned(),
            available: names(),
        })?;
        out.push_str(&rest[..start]);
        out.push_str(&path);
        rest = &after[end + CLOSE.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(command: &str) -> Result<String, RuntimeError> {
        expand_static(
            command,
            || vec!["data".into()],
            |name| (name == "data").then(|| "/static/data.csv".to_owned()),
        )
    }

    #[test]
    fn replaces_every_placeholder() {
        assert_eq!(
            expand("wc -l {{static:data}} {{static: data }}").unwrap(),
            "wc -l /static/data.csv /static/data.csv"
        );
        assert_eq!(expand("echo {{static:data").unwrap(), "echo {{static:data");
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let err = expand("cat {{static:nope}}").unwrap_err().to_string();
        assert!(err.contains("`nope`") && err.contains("data"), "{err}");
    }
}
