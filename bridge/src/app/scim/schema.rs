//! The schemas the service provider serves, as data: RFC 7643 §4's User (without `password`:
//! Slipway never authenticates with one, so it is dropped on arrival), Group, the enterprise
//! extension, and Slipway's extension with `githubLogin`. The same table drives
//! `/Schemas`, the case-insensitive attribute names, value types ("False" is a boolean from
//! Entra), which attributes are read-only, and which compare case-exactly in filters.

use serde_json::{Value, json};

use crate::identity::directory::{ENTERPRISE_SCHEMA, GROUP_SCHEMA, SLIPWAY_SCHEMA, USER_SCHEMA};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    String,
    Boolean,
    Binary,
    Reference,
    Complex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadWrite,
    ReadOnly,
    Immutable,
}

/// One attribute's definition (RFC 7643 §7).
#[derive(Debug)]
pub struct Attr {
    pub name: &'static str,
    pub kind: Type,
    pub multi: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    /// `server` for `userName`, else `none`.
    pub unique: bool,
    pub reference_types: &'static [&'static str],
    pub canonical: &'static [&'static str],
    pub sub: &'static [Attr],
    pub description: &'static str,
}

const fn attr(name: &'static str, kind: Type, description: &'static str) -> Attr {
    Attr {
        name,
        kind,
        multi: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        unique: false,
        reference_types: &[],
        canonical: &[],
        sub: &[],
        description,
    }
}

const fn string(name: &'static str, description: &'static str) -> Attr {
    attr(name, Type::String, description)
}

const fn complex(name: &'static str, sub: &'static [Attr], description: &'static str) -> Attr {
    Attr {
        sub,
        ..attr(name, Type::Complex, description)
    }
}

const fn multi(name: &'static str, sub: &'static [Attr], description: &'static str) -> Attr {
    Attr {
        multi: true,
        ..complex(name, sub, description)
    }
}

const fn typed(name: &'static str, canonical: &'static [&'static str]) -> Attr {
    Attr {
        canonical,
        ..string(name, "A label for the value's function.")
    }
}

const fn reference(name: &'static str, types: &'static [&'static str], d: &'static str) -> Attr {
    Attr {
        reference_types: types,
        ..attr(name, Type::Reference, d)
    }
}

const PRIMARY: Attr = attr(
    "primary",
    Type::Boolean,
    "Whether this is the preferred value.",
);
const DISPLAY: Attr = string("display", "A human-readable name.");

/// `value`, `display`, `type` with its canonical values, `primary`: most multi-valued attributes.
macro_rules! plural {
    ($value:expr, [$($canonical:literal),*]) => {
        &[$value, DISPLAY, typed("type", &[$($canonical),*]), PRIMARY]
    };
}

const NAME: &[Attr] = &[
    string("formatted", "The full name, formatted for display."),
    string("familyName", "The family name."),
    string("givenName", "The given name."),
    string("middleName", "The middle name(s)."),
    string("honorificPrefix", "A title such as Ms. or Dr."),
    string("honorificSuffix", "A suffix such as III."),
];

const ADDRESS: &[Attr] = &[
    string("formatted", "The full address, formatted for display."),
    string("streetAddress", "The street address."),
    string("locality", "The city or locality."),
    string("region", "The state or region."),
    string("postalCode", "The postal code."),
    string("country", "The country (ISO 3166-1 alpha-2)."),
    typed("type", &["work", "home", "other"]),
    PRIMARY,
];

const GROUP_REF: &[Attr] = &[
    Attr {
        mutability: Mutability::ReadOnly,
        ..string("value", "The group's id.")
    },
    Attr {
        mutability: Mutability::ReadOnly,
        ..reference("$ref", &["User", "Group"], "The group's URI.")
    },
    Attr {
        mutability: Mutability::ReadOnly,
        ..DISPLAY
    },
    Attr {
        mutability: Mutability::ReadOnly,
        ..typed("type", &["direct", "indirect"])
    },
];

const USER_ATTRS: &[Attr] = &[
    Attr {
        required: true,
        unique: true,
        ..string(
            "userName",
            "The unique name the identity provider signs the user in with.",
        )
    },
    complex("name", NAME, "The components of the user's name."),
    string("displayName", "The name to display."),
    string("nickName", "The casual name."),
    reference("profileUrl", &["external"], "The user's online profile."),
    string("title", "The user's title, such as Vice President."),
    string(
        "userType",
        "The relationship to the organisation, such as Employee.",
    ),
    string(
        "preferredLanguage",
        "The preferred language (RFC 7231 Accept-Language).",
    ),
    string("locale", "The default location for localisation."),
    string("timezone", "The time zone (IANA name)."),
    attr(
        "active",
        Type::Boolean,
        "false deprovisions: Slipway denies the person's next command.",
    ),
    multi(
        "emails",
        plural!(
            string("value", "An email address."),
            ["work", "home", "other"]
        ),
        "Email addresses; the primary one links the person's Slack account.",
    ),
    multi(
        "phoneNumbers",
        plural!(
            string("value", "A phone number."),
            ["work", "home", "mobile", "fax", "pager", "other"]
        ),
        "Phone numbers.",
    ),
    multi(
        "ims",
        plural!(
            string("value", "An instant messaging address."),
            ["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]
        ),
        "Instant messaging addresses.",
    ),
    multi(
        "photos",
        plural!(
            reference("value", &["external"], "A photo's URL."),
            ["photo", "thumbnail"]
        ),
        "Photos of the user.",
    ),
    multi("addresses", ADDRESS, "Physical mailing addresses."),
    Attr {
        mutability: Mutability::ReadOnly,
        ..multi(
            "groups",
            GROUP_REF,
            "The groups the user belongs to (read-only).",
        )
    },
    multi(
        "entitlements",
        plural!(string("value", "An entitlement."), []),
        "Entitlements.",
    ),
    multi("roles", plural!(string("value", "A role."), []), "Roles."),
    multi(
        "x509Certificates",
        plural!(
            attr("value", Type::Binary, "A DER certificate, base64."),
            []
        ),
        "X.509 certificates.",
    ),
];

const MEMBER: &[Attr] = &[
    Attr {
        mutability: Mutability::Immutable,
        ..string("value", "The member's id.")
    },
    Attr {
        mutability: Mutability::Immutable,
        ..reference("$ref", &["User", "Group"], "The member's URI.")
    },
    Attr {
        mutability: Mutability::Immutable,
        ..typed("type", &["User", "Group"])
    },
    DISPLAY,
];

const GROUP_ATTRS: &[Attr] = &[
    Attr {
        required: true,
        ..string(
            "displayName",
            "The group's name, unique: policy bindings name groups by it.",
        )
    },
    multi("members", MEMBER, "The group's members."),
];

const MANAGER: &[Attr] = &[
    string("value", "The manager's id."),
    reference("$ref", &["User"], "The manager's URI."),
    Attr {
        mutability: Mutability::ReadOnly,
        ..string("displayName", "The manager's name.")
    },
];

const ENTERPRISE_ATTRS: &[Attr] = &[
    string("employeeNumber", "The employee number."),
    string("costCenter", "The cost center."),
    string("organization", "The organisation."),
    string("division", "The division."),
    string("department", "The department."),
    complex("manager", MANAGER, "The user's manager."),
];

const SLIPWAY_ATTRS: &[Attr] = &[string(
    "githubLogin",
    "The person's GitHub login: their reviews count as them.",
)];

/// One schema: its URN, name and attributes.
#[derive(Debug)]
pub struct Schema {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [Attr],
}

pub static USER: Schema = Schema {
    id: USER_SCHEMA,
    name: "User",
    description: "A person the identity provider assigned to Slipway.",
    attributes: USER_ATTRS,
};
pub static GROUP: Schema = Schema {
    id: GROUP_SCHEMA,
    name: "Group",
    description: "A group; policy bindings map groups to roles by display name.",
    attributes: GROUP_ATTRS,
};
pub static ENTERPRISE: Schema = Schema {
    id: ENTERPRISE_SCHEMA,
    name: "EnterpriseUser",
    description: "The enterprise User extension (RFC 7643 §4.3).",
    attributes: ENTERPRISE_ATTRS,
};
pub static SLIPWAY: Schema = Schema {
    id: SLIPWAY_SCHEMA,
    name: "SlipwayUser",
    description: "Slipway's User extension.",
    attributes: SLIPWAY_ATTRS,
};

/// `externalId`, common to every resource (RFC 7643 §3.1): set by the provider, case-exact.
pub static EXTERNAL_ID: Attr = Attr {
    case_exact: true,
    ..string("externalId", "The provider's own id for the resource.")
};

/// `id`, common to every resource: the server's, case-exact.
pub static ID: Attr = Attr {
    case_exact: true,
    mutability: Mutability::ReadOnly,
    ..string("id", "The server's id for the resource.")
};

/// The two resource types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    pub fn from_endpoint(segment: &str) -> Option<Kind> {
        match segment {
            "Users" => Some(Kind::User),
            "Groups" => Some(Kind::Group),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        self.core().name
    }

    pub fn endpoint(self) -> &'static str {
        match self {
            Kind::User => "Users",
            Kind::Group => "Groups",
        }
    }

    pub fn core(self) -> &'static Schema {
        match self {
            Kind::User => &USER,
            Kind::Group => &GROUP,
        }
    }

    pub fn extensions(self) -> &'static [&'static Schema] {
        static USER_EXTENSIONS: [&Schema; 2] = [&ENTERPRISE, &SLIPWAY];
        match self {
            Kind::User => &USER_EXTENSIONS,
            Kind::Group => &[],
        }
    }

    /// The extension with this URN (case-insensitively).
    pub fn extension(self, urn: &str) -> Option<&'static Schema> {
        self.extensions()
            .iter()
            .copied()
            .find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// A top-level attribute of the core schema, or a common one (`id`, `externalId`).
    pub fn core_attr(self, name: &str) -> Option<&'static Attr> {
        [&ID, &EXTERNAL_ID]
            .into_iter()
            .chain(self.core().attributes)
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

/// The attribute named `name` among `attrs`, case-insensitively.
pub fn find<'a>(attrs: &'a [Attr], name: &str) -> Option<&'a Attr> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

fn type_name(t: Type) -> &'static str {
    match t {
        Type::String => "string",
        Type::Boolean => "boolean",
        Type::Binary => "binary",
        Type::Reference => "reference",
        Type::Complex => "complex",
    }
}

fn attr_json(a: &Attr) -> Value {
    let mut v = json!({
        "name": a.name,
        "type": type_name(a.kind),
        "multiValued": a.multi,
        "description": a.description,
        "required": a.required,
        "caseExact": a.case_exact,
        "mutability": match a.mutability {
            Mutability::ReadWrite => "readWrite",
            Mutability::ReadOnly => "readOnly",
            Mutability::Immutable => "immutable",
        },
        "returned": "default",
        "uniqueness": if a.unique { "server" } else { "none" },
    });
    if !a.sub.is_empty() {
        v["subAttributes"] = a.sub.iter().map(attr_json).collect();
    }
    if !a.reference_types.is_empty() {
        v["referenceTypes"] = json!(a.reference_types);
    }
    if !a.canonical.is_empty() {
        v["canonicalValues"] = json!(a.canonical);
    }
    v
}

/// Every schema served, in `/Schemas` order.
pub static ALL: [&Schema; 4] = [&USER, &GROUP, &ENTERPRISE, &SLIPWAY];

/// A schema as `/Schemas/{id}` serves it.
pub fn schema_json(s: &Schema, base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "attributes": s.attributes.iter().map(attr_json).collect::<Vec<_>>(),
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{}", s.id)},
    })
}

/// A resource type as `/ResourceTypes/{id}` serves it.
pub fn resource_type_json(k: Kind, base: &str) -> Value {
    let extensions: Vec<Value> = k
        .extensions()
        .iter()
        .map(|s| json!({"schema": s.id, "required": false}))
        .collect();
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": k.name(),
        "name": k.name(),
        "endpoint": format!("/{}", k.endpoint()),
        "description": k.core().description,
        "schema": k.core().id,
        "schemaExtensions": extensions,
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{}", k.name())},
    })
}

/// What the service provider supports (RFC 7643 §5).
pub fn service_provider_config(base: &str, max_results: usize, max_body: usize) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": max_body},
        "filter": {"supported": true, "maxResults": max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "The token in SLIPWAY_SCIM_TOKEN, as `Authorization: Bearer …`.",
            "primary": true,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_describe_every_attribute_with_its_characteristics() {
        let user = schema_json(&USER, "http://h/scim/v2");
        let attrs = user["attributes"].as_array().unwrap();
        let user_name = &attrs[0];
        assert_eq!(user_name["name"], "userName");
        assert_eq!(user_name["uniqueness"], "server");
        assert_eq!(user_name["required"], true);
        let emails = attrs.iter().find(|a| a["name"] == "emails").unwrap();
        assert_eq!(emails["multiValued"], true);
        assert_eq!(emails["subAttributes"][2]["canonicalValues"][0], "work");
        assert!(attrs.iter().all(|a| a["name"] != "password"));
        assert_eq!(Kind::User.core_attr("USERNAME").unwrap().name, "userName");
        assert!(Kind::User.core_attr("externalid").unwrap().case_exact);
        assert!(
            Kind::User
                .extension(&SLIPWAY_SCHEMA.to_uppercase())
                .is_some()
        );
        assert!(Kind::Group.extension(ENTERPRISE_SCHEMA).is_none());
    }
}
