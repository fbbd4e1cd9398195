//! ACL entries as PostgreSQL prints them (`aclitemout`): `grantee=privileges/grantor`.
//!
//! Extraction reads a relation's whole ACL in one row (`relacl::text[]`) and
//! decodes it here, instead of one row per entry from `aclexplode`: a large
//! catalog holds tens of entries per table, and a row per entry (each with the
//! schema, table and owner repeated, and a grantee name looked up) was most of
//! a scan's time on both sides of the connection.
//!
//! The format: the grantee is empty for PUBLIC; a name that is not only ASCII
//! letters, digits and `_` is double-quoted, a `"` inside doubled. Each
//! privilege is one letter (`ACL_ALL_RIGHTS_STR`), followed by `*` when held
//! with the grant option. What follows `/` is the grantor, which the model does
//! not keep (several grantors of one privilege are one grant).

use std::borrow::Cow;

use grantwarden_core::model::Privilege;

/// One entry's grantee (`None`: PUBLIC) and its privileges with their grant option.
#[derive(Debug, PartialEq, Eq)]
pub struct AclItem<'a> {
    /// The grantee's name as stored, `None` for PUBLIC.
    pub grantee: Option<Cow<'a, str>>,
    /// Each privilege and whether it is held WITH GRANT OPTION.
    pub privileges: Vec<(Privilege, bool)>,
}

/// The privilege a letter of `ACL_ALL_RIGHTS_STR` stands for.
fn privilege_of(letter: u8) -> Option<Privilege> {
    Some(match letter {
        b'a' => Privilege::Insert,
        b'r' => Privilege::Select,
        b'w' => Privilege::Update,
        b'd' => Privilege::Delete,
        b'D' => Privilege::Truncate,
        b'x' => Privilege::References,
        b't' => Privilege::Trigger,
        b'X' => Privilege::Execute,
        b'U' => Privilege::Usage,
        b'C' => Privilege::Create,
        b'T' => Privilege::Temporary,
        b'c' => Privilege::Connect,
        b'm' => Privilege::Maintain,
        // s (SET) and A (ALTER SYSTEM) exist on configuration parameters only
        _ => return None,
    })
}

/// Reads a name as `putid` writes it, up to `end`; returns it and the rest.
fn name(s: &str, end: u8) -> Result<(Cow<'_, str>, &str), String> {
    let Some(quoted) = s.strip_prefix('"') else {
        let stop = s.bytes().position(|b| b == end).ok_or_else(|| format!("no {:?} after the name", end as char))?;
        return Ok((Cow::Borrowed(&s[..stop]), &s[stop..]));
    };
    let mut out = String::new();
    let mut rest = quoted;
    loop {
        let Some(at) = rest.find('"') else { return Err("an unterminated quoted name".into()) };
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        match rest.strip_prefix('"') {
            // a doubled quote is one quote of the name
            Some(after) => {
                out.push('"');
                rest = after;
            }
            None => return Ok((Cow::Owned(out), rest)),
        }
    }
}

/// Decodes one ACL entry.
pub fn parse_item(item: &str) -> Result<AclItem<'_>, String> {
    let fail = |why: String| format!("ACL entry {item:?}: {why}");
    let (grantee, rest) = name(item, b'=').map_err(fail)?;
    let rest = rest.strip_prefix('=').ok_or_else(|| fail("no '=' after the grantee".into()))?;
    let letters = rest.split_once('/').map_or(rest, |(privileges, _grantor)| privileges).as_bytes();
    let mut privileges = Vec::with_capacity(letters.len());
    let mut i = 0;
    while i < letters.len() {
        let privilege = privilege_of(letters[i])
            .ok_or_else(|| fail(format!("unknown privilege letter {:?}", letters[i] as char)))?;
        let grantable = letters.get(i + 1) == Some(&b'*');
        privileges.push((privilege, grantable));
        i += if grantable { 2 } else { 1 };
    }
    Ok(AclItem { grantee: (!grantee.is_empty()).then_some(grantee), privileges })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn entries_read_like_aclexplode() {
        let item = parse_item("postgres=arwdDxt/postgres").unwrap();
        assert_eq!(item.grantee.as_deref(), Some("postgres"));
        assert_eq!(item.privileges.len(), 7);
        assert_eq!(item.privileges[0], (Privilege::Insert, false));
        let public = parse_item("=r/postgres").unwrap();
        assert_eq!((public.grantee, public.privileges), (None, vec![(Privilege::Select, false)]));
        let options = parse_item("app=r*w/owner").unwrap();
        assert_eq!(options.privileges, [(Privilege::Select, true), (Privilege::Update, false)]);
        let hostile = parse_item(r#""we""ird=ro/le; DROP"=U*C/"o""wner""#).unwrap();
        assert_eq!(hostile.grantee.as_deref(), Some(r#"we"ird=ro/le; DROP"#));
        assert_eq!(hostile.privileges, [(Privilege::Usage, true), (Privilege::Create, false)]);
    }

    #[test]
    fn what_cannot_be_read_is_an_error_naming_the_entry() {
        for bad in ["postgres", "\"open=r/x", "app=rQ/owner", "app=s/owner"] {
            let err = parse_item(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    /// `putid` of PostgreSQL's acl.c: quoted unless ASCII letters, digits and `_` only.
    fn putid(name: &str) -> String {
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            name.to_owned()
        } else {
            format!("\"{}\"", name.replace('"', "\"\""))
        }
    }

    proptest! {
        #[test]
        fn any_role_name_reads_back_exactly(grantee in "[^\u{0}]{1,20}", grantor in "[^\u{0}]{1,20}", opts in any::<[bool; 3]>()) {
            let letters: String = ["r", "w", "a"].iter().zip(opts).map(|(l, o)| format!("{l}{}", if o { "*" } else { "" })).collect();
            let text = format!("{}={letters}/{}", putid(&grantee), putid(&grantor));
            let item = parse_item(&text).unwrap();
            prop_assert_eq!(item.grantee.as_deref(), Some(grantee.as_str()));
            prop_assert_eq!(item.privileges.iter().map(|p| p.1).collect::<Vec<_>>(), opts.to_vec());
        }
    }
}
