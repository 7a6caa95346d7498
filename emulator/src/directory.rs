//! The seeded directory: tenants with users, groups and memberships, plus the change versions
//! that delta queries read.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::rng::Seeded;

/// Role template id of Global Administrator, as emitted in `wids`.
pub const GLOBAL_ADMIN_ROLE: &str = "62e90394-69f5-4237-9190-012177145e10";

/// An activated directory role (Graph's `directoryRole`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryRole {
    /// Object id, per tenant.
    pub id: Uuid,
    /// The built-in role's template id, as `wids` carries it.
    pub role_template_id: &'static str,
    /// Graph `displayName`.
    pub display_name: &'static str,
    /// Graph `description`.
    pub description: &'static str,
}

/// Whether a directory object is live, in the recycle bin, or gone for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Life {
    /// Present and listed.
    Active,
    /// Soft-deleted: delta reports `@removed: {"reason": "changed"}`.
    SoftDeleted,
    /// Permanently deleted: delta reports `@removed: {"reason": "deleted"}`.
    HardDeleted,
}

/// A user object with the properties Gangway replicates.
#[derive(Clone, Debug)]
pub struct User {
    /// Object id.
    pub id: Uuid,
    /// Sign-in name, unique in the tenant.
    pub user_principal_name: String,
    /// Graph `displayName`.
    pub display_name: String,
    /// Graph `givenName`.
    pub given_name: Option<String>,
    /// Graph `surname`.
    pub surname: Option<String>,
    /// Graph `mail`.
    pub mail: Option<String>,
    /// Graph `businessPhones`.
    pub business_phones: Vec<String>,
    /// Graph `mobilePhone`.
    pub mobile_phone: Option<String>,
    /// Graph `jobTitle`.
    pub job_title: Option<String>,
    /// Graph `department`.
    pub department: Option<String>,
    /// Disabled accounts cannot sign in (AADSTS50057).
    pub account_enabled: bool,
    /// Holds the Global Administrator role.
    pub is_admin: bool,
    /// Set when created through the admin API with an explicit password.
    pub password_override: Option<String>,
    /// Tenant version of the last change.
    pub version: u64,
    /// Which properties changed when, for minimal delta answers.
    pub changes: Changes,
    /// Live, soft- or hard-deleted.
    pub life: Life,
}

/// When an object was created and when each of its properties last changed, so that a delta
/// round with `Prefer: return=minimal` can answer only what changed.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    /// Tenant version at creation.
    pub created: u64,
    /// (Graph property name, version of its last change); objects change few properties.
    properties: Vec<(String, u64)>,
}

impl Changes {
    /// Stamps version `v` on every property whose value differs between `before` and `after`.
    pub fn record(&mut self, before: &Map<String, Value>, after: &Map<String, Value>, v: u64) {
        for (name, value) in after {
            if before.get(name) == Some(value) {
                continue;
            }
            match self.properties.iter_mut().find(|(p, _)| p == name) {
                Some(entry) => entry.1 = v,
                None => self.properties.push((name.clone(), v)),
            }
        }
    }

    /// Whether property `name` changed after version `since`.
    pub fn changed_since(&self, name: &str, since: u64) -> bool {
        self.properties.iter().any(|(p, v)| p == name && *v > since)
    }
}

impl User {
    /// The sign-in password: `Emu-` + first 8 hex digits of the object id + `!`, unless overridden.
    pub fn password(&self) -> String {
        self.password_override
            .clone()
            .unwrap_or_else(|| seeded_password(self.id))
    }

    /// All Graph properties the emulator knows, as Graph names them.
    pub fn to_json(&self) -> Map<String, Value> {
        let v = json!({
            "id": self.id,
            "userPrincipalName": self.user_principal_name,
            "displayName": self.display_name,
            "givenName": self.given_name,
            "surname": self.surname,
            "mail": self.mail,
            "businessPhones": self.business_phones,
            "mobilePhone": self.mobile_phone,
            "jobTitle": self.job_title,
            "department": self.department,
            "officeLocation": Value::Null,
            "preferredLanguage": Value::Null,
            "accountEnabled": self.account_enabled,
        });
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }
}

/// The password rule for seeded users.
pub fn seeded_password(id: Uuid) -> String {
    format!("Emu-{}!", &id.simple().to_string()[..8])
}

/// Graph's `@odata.type` of a user member.
pub const USER_TYPE: &str = "#microsoft.graph.user";
/// Graph's `@odata.type` of a group member (a nested group).
pub const GROUP_TYPE: &str = "#microsoft.graph.group";
/// The other directory objects a group can hold (group resource, `members`): service
/// principals, devices and organizational contacts. The emulator keeps only their name.
pub const OTHER_TYPES: [&str; 3] = [
    "#microsoft.graph.servicePrincipal",
    "#microsoft.graph.device",
    "#microsoft.graph.orgContact",
];

/// A service principal, device or organizational contact: only ever seen as a group member.
#[derive(Clone, Debug)]
pub struct DirectoryObject {
    /// Object id.
    pub id: Uuid,
    /// One of [`OTHER_TYPES`].
    pub kind: &'static str,
    /// Graph `displayName`.
    pub display_name: String,
}

/// A group with its members (users, groups and other directory objects) and a log of
/// membership changes for delta.
#[derive(Clone, Debug)]
pub struct Group {
    /// Object id.
    pub id: Uuid,
    /// Graph `displayName`.
    pub display_name: String,
    /// Graph `description`.
    pub description: Option<String>,
    /// Graph `mailNickname`.
    pub mail_nickname: String,
    /// Graph `mail` (Microsoft 365 groups only).
    pub mail: Option<String>,
    /// Graph `mailEnabled`.
    pub mail_enabled: bool,
    /// Graph `securityEnabled`.
    pub security_enabled: bool,
    /// Graph `groupTypes` (`Unified` for Microsoft 365 groups).
    pub group_types: Vec<String>,
    /// Member object ids.
    pub members: BTreeSet<Uuid>,
    /// `@odata.type` of every member that ever was one and is not a user.
    pub member_types: BTreeMap<Uuid, &'static str>,
    /// (tenant version, member id, added?) for every membership change after seeding.
    pub member_log: Vec<(u64, Uuid, bool)>,
    /// Tenant version of the last change (membership changes included).
    pub version: u64,
    /// Which properties changed when, for minimal delta answers.
    pub changes: Changes,
    /// Live, soft- or hard-deleted.
    pub life: Life,
}

impl Group {
    /// A member's `@odata.type`.
    pub fn member_type(&self, id: Uuid) -> &'static str {
        self.member_types.get(&id).copied().unwrap_or(USER_TYPE)
    }

    /// Only Microsoft 365 groups go to the recycle bin: "Deleted security groups are deleted
    /// permanently" (directory deletedItems).
    pub fn restorable(&self) -> bool {
        self.group_types.iter().any(|t| t == "Unified")
    }

    /// All Graph properties the emulator knows.
    pub fn to_json(&self) -> Map<String, Value> {
        let v = json!({
            "id": self.id,
            "displayName": self.display_name,
            "description": self.description,
            "mailNickname": self.mail_nickname,
            "mail": self.mail,
            "mailEnabled": self.mail_enabled,
            "securityEnabled": self.security_enabled,
            "groupTypes": self.group_types,
        });
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }
}

/// A verified domain of a tenant.
#[derive(Clone, Debug)]
pub struct Domain {
    /// DNS name.
    pub name: String,
    /// The domain new user names get.
    pub is_default: bool,
    /// The `*.onmicrosoft.com` domain the tenant was created with.
    pub is_initial: bool,
}

/// One Entra tenant.
#[derive(Clone, Debug)]
pub struct Tenant {
    /// Tenant id.
    pub id: Uuid,
    /// Organization name.
    pub display_name: String,
    /// Verified domains.
    pub domains: Vec<Domain>,
    /// Users in creation order (deleted ones stay as tombstones for delta).
    pub users: Vec<User>,
    /// Groups in creation order (with tombstones).
    pub groups: Vec<Group>,
    /// Service principals, devices and contacts (group members only); deleted ones are gone.
    pub objects: Vec<DirectoryObject>,
    user_by_id: HashMap<Uuid, usize>,
    user_by_upn: HashMap<String, usize>,
    group_by_id: HashMap<Uuid, usize>,
    /// Bumped on every change; objects carry the version of their last change.
    pub version: u64,
    /// Bumped by delta-reset: links minted under an older epoch answer 410.
    pub epoch: u64,
    /// "User consent for applications": whether members may consent for themselves to
    /// permissions that need no admin (Microsoft's default), or only an admin can consent.
    pub user_consent: bool,
}

const TENANT_NAMES: &[&str] = &[
    "Contoso",
    "Fabrikam",
    "Northwind Traders",
    "Tailspin Toys",
    "Woodgrove Bank",
    "Adventure Works",
    "Litware",
    "Proseware",
    "Wingtip Toys",
    "Alpine Ski House",
    "Coho Winery",
    "Trey Research",
];

/// (native spelling, ASCII for the user name).
type Name = (&'static str, &'static str);

struct Culture {
    given: &'static [Name],
    surnames: &'static [Name],
    /// Family name first, no space (Chinese, Japanese).
    family_first: bool,
}

const CULTURES: &[(u32, Culture)] = &[
    (
        70,
        Culture {
            given: &[
                ("Anna", "anna"),
                ("James", "james"),
                ("Chloé", "chloe"),
                ("José", "jose"),
                ("Zoë", "zoe"),
                ("Søren", "soren"),
                ("Björn", "bjorn"),
                ("François", "francois"),
                ("Siobhán", "siobhan"),
                ("Łukasz", "lukasz"),
                ("Mary", "mary"),
                ("Noah", "noah"),
                ("Amélie", "amelie"),
                ("Jürgen", "jurgen"),
                ("Olivia", "olivia"),
                ("Liam", "liam"),
                ("Renée", "renee"),
                ("Ægir", "aegir"),
                ("Priya", "priya"),
                ("Mohammed", "mohammed"),
            ],
            surnames: &[
                ("O'Brien", "o'brien"),
                ("Smith", "smith"),
                ("García", "garcia"),
                ("Müller", "muller"),
                ("Núñez", "nunez"),
                ("D'Angelo", "d'angelo"),
                ("Kowalski", "kowalski"),
                ("van der Berg", "vanderberg"),
                ("Nguyen", "nguyen"),
                ("Johansson", "johansson"),
                ("Lefèvre", "lefevre"),
                ("O'Connor", "o'connor"),
                ("Patel", "patel"),
                ("Brown", "brown"),
                ("Wiśniewska", "wisniewska"),
                ("Ødegaard", "odegaard"),
            ],
            family_first: false,
        },
    ),
    (
        10,
        Culture {
            given: &[
                ("芳", "fang"),
                ("伟", "wei"),
                ("娜", "na"),
                ("磊", "lei"),
                ("静", "jing"),
            ],
            surnames: &[
                ("王", "wang"),
                ("李", "li"),
                ("张", "zhang"),
                ("刘", "liu"),
                ("陈", "chen"),
            ],
            family_first: true,
        },
    ),
    (
        8,
        Culture {
            given: &[
                ("Σοφία", "sofia"),
                ("Γιώργος", "giorgos"),
                ("Ελένη", "eleni"),
                ("Νίκος", "nikos"),
            ],
            surnames: &[
                ("Παπαδόπουλος", "papadopoulos"),
                ("Οικονόμου", "oikonomou"),
                ("Γεωργίου", "georgiou"),
            ],
            family_first: false,
        },
    ),
    (
        6,
        Culture {
            given: &[
                ("Дмитрий", "dmitriy"),
                ("Анна", "anna"),
                ("Ольга", "olga"),
                ("Иван", "ivan"),
            ],
            surnames: &[
                ("Иванов", "ivanov"),
                ("Смирнова", "smirnova"),
                ("Петров", "petrov"),
            ],
            family_first: false,
        },
    ),
    (
        6,
        Culture {
            given: &[("結衣", "yui"), ("陽翔", "haruto"), ("さくら", "sakura")],
            surnames: &[("佐藤", "sato"), ("鈴木", "suzuki"), ("高橋", "takahashi")],
            family_first: true,
        },
    ),
];

const JOB_TITLES: &[&str] = &[
    "Sales Manager",
    "Software Engineer",
    "Accountant",
    "Marketing Specialist",
    "HR Partner",
    "Support Engineer",
    "Product Manager",
    "Designer",
    "Legal Counsel",
    "Data Analyst",
];
const DEPARTMENTS: &[&str] = &[
    "Sales",
    "Engineering",
    "Finance",
    "Marketing",
    "Human Resources",
    "Support",
    "Legal",
    "Research & Development",
];
const GROUP_NAMES: &[&str] = &[
    "All Company",
    "Sales",
    "Engineering",
    "Finance",
    "Marketing",
    "Support",
    "Zürich Office",
    "Research & Development",
    "Executives",
    "Interns",
];

impl Tenant {
    /// Generates tenant number `index` of a seed: same inputs, same tenant. Without
    /// `memberships`, group 0 has every user and every other group about 30 % of them; with it,
    /// that many memberships are dealt evenly over the groups (see [`dealt`]).
    pub fn generate(
        seed: u64,
        index: u64,
        name: Option<String>,
        users: usize,
        groups: usize,
        memberships: Option<usize>,
    ) -> Self {
        let mut rng = Seeded::new(seed, index + 1);
        let id = rng.uuid();
        let base_name = TENANT_NAMES[index as usize % TENANT_NAMES.len()];
        let round = index as usize / TENANT_NAMES.len();
        let display_name = name.unwrap_or_else(|| match round {
            0 => base_name.to_string(),
            n => format!("{base_name} {}", n + 1),
        });
        let mut slug: String = display_name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if slug.is_empty() {
            slug = "tenant".into();
        }
        // Domains must be unique across tenants; the id suffix keeps them so for any name.
        let slug = format!("{slug}{}", &id.simple().to_string()[..4]);
        let initial = format!("{slug}.onmicrosoft.com");
        let mut tenant = Tenant {
            id,
            display_name,
            domains: vec![
                Domain {
                    name: initial.clone(),
                    is_default: true,
                    is_initial: true,
                },
                Domain {
                    name: format!("{slug}.example"),
                    is_default: false,
                    is_initial: false,
                },
            ],
            users: Vec::with_capacity(users),
            groups: Vec::with_capacity(groups),
            objects: Vec::new(),
            user_by_id: HashMap::with_capacity(users),
            user_by_upn: HashMap::with_capacity(users),
            group_by_id: HashMap::new(),
            version: 1,
            epoch: 0,
            user_consent: true,
        };
        let mut taken = HashMap::new();
        for i in 0..users {
            let user = if i == 0 {
                let id = rng.uuid();
                User {
                    id,
                    user_principal_name: format!("admin@{initial}"),
                    display_name: "MOD Administrator".into(),
                    given_name: Some("MOD".into()),
                    surname: Some("Administrator".into()),
                    mail: Some(format!("admin@{initial}")),
                    business_phones: vec!["+1 425 555 0100".into()],
                    mobile_phone: None,
                    job_title: Some("IT Administrator".into()),
                    department: Some("IT".into()),
                    account_enabled: true,
                    is_admin: true,
                    password_override: None,
                    version: 1,
                    changes: Changes::default(),
                    life: Life::Active,
                }
            } else {
                random_user(&mut rng, &initial, &mut taken)
            };
            tenant.insert_user(user);
        }
        let member_ids: Vec<Uuid> = tenant.users.iter().map(|u| u.id).collect();
        for g in 0..groups {
            let name = match g / GROUP_NAMES.len() {
                0 => GROUP_NAMES[g].to_string(),
                n => format!("{} {}", GROUP_NAMES[g % GROUP_NAMES.len()], n + 1),
            };
            let nickname: String = name.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
            let unified = rng.chance(0.5);
            let members = match memberships {
                None => member_ids
                    .iter()
                    .filter(|_| g == 0 || rng.chance(0.3))
                    .copied()
                    .collect(),
                Some(total) => dealt(&member_ids, g, groups, total),
            };
            tenant.insert_group(Group {
                id: rng.uuid(),
                display_name: name.clone(),
                description: Some(format!("{name} at {}", tenant.display_name)),
                mail: unified.then(|| format!("{nickname}@{initial}")),
                mail_nickname: nickname,
                mail_enabled: unified,
                security_enabled: !unified,
                group_types: if unified {
                    vec!["Unified".into()]
                } else {
                    vec![]
                },
                members,
                member_types: BTreeMap::new(),
                member_log: Vec::new(),
                version: 1,
                changes: Changes::default(),
                life: Life::Active,
            });
        }
        tenant
    }

    /// The domain user names are created in.
    pub fn default_domain(&self) -> &str {
        self.domains
            .iter()
            .find(|d| d.is_default)
            .map(|d| d.name.as_str())
            .unwrap_or("")
    }

    /// The seeded Global Administrator (first active admin).
    pub fn admin(&self) -> Option<&User> {
        self.users
            .iter()
            .find(|u| u.is_admin && u.life == Life::Active)
    }

    /// The Global Administrator `directoryRole` of this tenant (the one role modelled): its
    /// object id differs per tenant, its `roleTemplateId` is the same everywhere.
    pub fn global_admin_role(&self) -> DirectoryRole {
        let mut bytes = *self.id.as_bytes();
        // A fixed, different id per tenant: the tenant id with its first bytes marked.
        bytes[0] ^= 0x5a;
        bytes[1] ^= 0xa5;
        DirectoryRole {
            id: Uuid::from_bytes(bytes),
            role_template_id: GLOBAL_ADMIN_ROLE,
            display_name: "Global Administrator",
            description: "Can manage all aspects of Microsoft Entra ID and Microsoft services that use Microsoft Entra identities.",
        }
    }

    /// The directory roles `oid` holds (Global Administrator for admins).
    pub fn roles_of(&self, oid: Uuid) -> Vec<DirectoryRole> {
        self.users
            .iter()
            .filter(|u| u.id == oid && u.is_admin && u.life == Life::Active)
            .map(|_| self.global_admin_role())
            .collect()
    }

    /// A plain member that can sign in.
    pub fn member(&self) -> Option<&User> {
        self.users
            .iter()
            .find(|u| !u.is_admin && u.life == Life::Active && u.account_enabled)
    }

    /// Active users.
    pub fn active_users(&self) -> usize {
        self.users.iter().filter(|u| u.life == Life::Active).count()
    }

    /// Active groups.
    pub fn active_groups(&self) -> usize {
        self.groups
            .iter()
            .filter(|g| g.life == Life::Active)
            .count()
    }

    /// Finds a non-purged user by object id or user principal name.
    pub fn user(&self, key: &str) -> Option<&User> {
        self.user_index(key).map(|i| &self.users[i])
    }

    /// Index of a non-purged user by object id or user principal name.
    pub fn user_index(&self, key: &str) -> Option<usize> {
        let idx = match Uuid::parse_str(key) {
            Ok(id) => self.user_by_id.get(&id).copied(),
            Err(_) => self.user_by_upn.get(&key.to_lowercase()).copied(),
        }?;
        (self.users[idx].life != Life::HardDeleted).then_some(idx)
    }

    /// Index of a non-purged group by id.
    pub fn group_index(&self, id: &str) -> Option<usize> {
        let idx = self.group_by_id.get(&Uuid::parse_str(id).ok()?).copied()?;
        (self.groups[idx].life != Life::HardDeleted).then_some(idx)
    }

    /// Whether `name` is one of this tenant's verified domains.
    pub fn has_domain(&self, name: &str) -> bool {
        self.domains
            .iter()
            .any(|d| d.name.eq_ignore_ascii_case(name))
    }

    /// Starts a change: returns the version to stamp on what changes.
    pub fn bump(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    /// Adds a user (new id and UPN required); stamps the current version.
    pub fn insert_user(&mut self, mut user: User) {
        user.version = self.version;
        user.changes.created = self.version;
        self.user_by_id.insert(user.id, self.users.len());
        self.user_by_upn
            .insert(user.user_principal_name.to_lowercase(), self.users.len());
        self.users.push(user);
    }

    /// Re-indexes a user's UPN after a rename.
    pub fn reindex_upn(&mut self, idx: usize, old_upn: &str) {
        self.user_by_upn.remove(&old_upn.to_lowercase());
        self.user_by_upn
            .insert(self.users[idx].user_principal_name.to_lowercase(), idx);
    }

    /// Whether a UPN is already used in this tenant.
    pub fn upn_taken(&self, upn: &str) -> bool {
        self.user_by_upn.contains_key(&upn.to_lowercase())
    }

    /// Adds a group; stamps the current version.
    pub fn insert_group(&mut self, mut group: Group) {
        group.version = self.version;
        group.changes.created = self.version;
        self.group_by_id.insert(group.id, self.groups.len());
        self.groups.push(group);
    }

    /// Deletes a user (soft or hard); a hard delete also drops it from every group.
    pub fn delete_user(&mut self, idx: usize, hard: bool) {
        let v = self.bump();
        let user = &mut self.users[idx];
        user.life = if hard {
            Life::HardDeleted
        } else {
            Life::SoftDeleted
        };
        user.version = v;
        let uid = user.id;
        let upn = user.user_principal_name.to_lowercase();
        if hard {
            self.user_by_upn.remove(&upn);
        }
        // Graph drops soft-deleted users from memberships too.
        self.leave_all(uid, v);
    }

    /// Deletes a group: a security group for good (it cannot be restored), a Microsoft 365
    /// group to the recycle bin unless `hard`. Either way it leaves the groups it was in.
    pub fn delete_group(&mut self, g: usize, hard: bool) {
        let v = self.bump();
        let group = &mut self.groups[g];
        group.life = if hard || !group.restorable() {
            Life::HardDeleted
        } else {
            Life::SoftDeleted
        };
        group.version = v;
        let id = group.id;
        self.leave_all(id, v);
    }

    /// Removes `id` from every group it is a member of, at version `v`.
    fn leave_all(&mut self, id: Uuid, v: u64) {
        for g in 0..self.groups.len() {
            self.set_membership(g, id, None, false, v);
        }
    }

    /// The `@odata.type` of a live object that can be a group member, if there is one by `id`.
    pub fn member_kind(&self, id: Uuid) -> Option<&'static str> {
        let key = id.to_string();
        if self.user(&key).is_some_and(|u| u.life == Life::Active) {
            Some(USER_TYPE)
        } else if self
            .group_index(&key)
            .is_some_and(|g| self.groups[g].life == Life::Active)
        {
            Some(GROUP_TYPE)
        } else {
            self.objects.iter().find(|o| o.id == id).map(|o| o.kind)
        }
    }

    /// Deletes a service principal, device or contact; it leaves every group. False if none.
    pub fn delete_object(&mut self, id: Uuid) -> bool {
        let Some(at) = self.objects.iter().position(|o| o.id == id) else {
            return false;
        };
        self.objects.remove(at);
        let v = self.bump();
        self.leave_all(id, v);
        true
    }

    /// Restores a soft-deleted user from the recycle bin (memberships stay lost, as in Entra
    /// unless they are re-added). Delta answers it in full and without annotation, as Graph
    /// does for a restored object.
    pub fn restore_user(&mut self, idx: usize) {
        let v = self.bump();
        let user = &mut self.users[idx];
        user.life = Life::Active;
        user.version = v;
        user.changes.created = v;
    }

    /// Adds (with its `@odata.type`, `None` for a user) or removes a member, logging the
    /// change at version `v`; false if nothing changed.
    pub fn set_membership(
        &mut self,
        g: usize,
        uid: Uuid,
        kind: Option<&'static str>,
        add: bool,
        v: u64,
    ) -> bool {
        let group = &mut self.groups[g];
        if let Some(kind) = kind.filter(|k| *k != USER_TYPE) {
            group.member_types.insert(uid, kind);
        }
        let changed = if add {
            group.members.insert(uid)
        } else {
            group.members.remove(&uid)
        };
        if changed {
            group.member_log.push((v, uid, add));
            group.version = v;
        }
        changed
    }
}

/// Group `g`'s share when `total` memberships are dealt over `groups` groups: a run of
/// consecutive users that continues where the previous group's stopped, wrapping around, so
/// every group gets `total / groups` members (give or take one) and every user is in about
/// `total / users` groups. A group holds each user once: at most `users` members each.
fn dealt(users: &[Uuid], g: usize, groups: usize, total: usize) -> BTreeSet<Uuid> {
    if users.is_empty() {
        return BTreeSet::new();
    }
    let (each, extra) = (total / groups, total % groups);
    let count = (each + usize::from(g < extra)).min(users.len());
    let start = (g * each + g.min(extra)) % users.len();
    (0..count)
        .map(|k| users[(start + k) % users.len()])
        .collect()
}

fn random_user(rng: &mut Seeded, domain: &str, taken: &mut HashMap<String, u32>) -> User {
    let total: u32 = CULTURES.iter().map(|(w, _)| w).sum();
    let mut roll = rng.below(total as usize) as u32;
    let culture = CULTURES
        .iter()
        .find(|(w, _)| {
            if roll < *w {
                true
            } else {
                roll -= w;
                false
            }
        })
        .map(|(_, c)| c)
        .unwrap_or(&CULTURES[0].1);
    let (given, given_ascii) = *rng.pick(culture.given);
    let (surname, surname_ascii) = *rng.pick(culture.surnames);
    let display_name = if culture.family_first {
        format!("{surname}{given}")
    } else {
        format!("{given} {surname}")
    };
    let stem = format!("{given_ascii}.{surname_ascii}");
    // Stems never end in a digit, so "stem" + count cannot collide with another stem.
    let count = taken.entry(stem.clone()).or_insert(0);
    *count += 1;
    let local = if *count == 1 {
        stem
    } else {
        format!("{stem}{count}")
    };
    let upn = format!("{local}@{domain}");
    let phone = |rng: &mut Seeded| format!("+1 425 555 {:04}", rng.below(10_000));
    User {
        id: rng.uuid(),
        mail: rng.chance(0.9).then(|| upn.clone()),
        user_principal_name: upn,
        display_name,
        given_name: Some(given.to_string()),
        surname: Some(surname.to_string()),
        business_phones: if rng.chance(0.7) {
            vec![phone(rng)]
        } else {
            vec![]
        },
        mobile_phone: rng.chance(0.5).then(|| phone(rng)),
        job_title: Some(rng.pick(JOB_TITLES).to_string()),
        department: Some(rng.pick(DEPARTMENTS).to_string()),
        account_enabled: rng.chance(0.95),
        is_admin: false,
        password_override: None,
        version: 1,
        changes: Changes::default(),
        life: Life::Active,
    }
}

/// All tenants.
#[derive(Debug, Default)]
pub struct Directory {
    /// Tenants in creation order.
    pub tenants: Vec<Tenant>,
    seed: u64,
}

/// How the `{tenant}` path segment of a login URL was resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authority {
    /// A specific tenant (by GUID or verified domain), index into `tenants`.
    Tenant(usize),
    /// `organizations`: any work account.
    Organizations,
    /// `common`: any account (no personal accounts exist here).
    Common,
}

impl Directory {
    /// Seeds `count` tenants (memberships as [`Tenant::generate`] says).
    pub fn seeded(
        seed: u64,
        count: usize,
        users: usize,
        groups: usize,
        memberships: Option<usize>,
    ) -> Self {
        let mut dir = Directory {
            tenants: Vec::with_capacity(count),
            seed,
        };
        for _ in 0..count {
            dir.add_tenant(None, users, groups, memberships);
        }
        dir
    }

    /// Adds the next seeded tenant; returns its index.
    pub fn add_tenant(
        &mut self,
        name: Option<String>,
        users: usize,
        groups: usize,
        memberships: Option<usize>,
    ) -> usize {
        let index = self.tenants.len();
        self.tenants.push(Tenant::generate(
            self.seed,
            index as u64,
            name,
            users,
            groups,
            memberships,
        ));
        index
    }

    /// Tenant index by GUID.
    pub fn tenant_index(&self, id: Uuid) -> Option<usize> {
        self.tenants.iter().position(|t| t.id == id)
    }

    /// Resolves a login path segment: GUID, verified domain, `organizations` or `common`.
    pub fn resolve(&self, segment: &str) -> Option<Authority> {
        match segment.to_ascii_lowercase().as_str() {
            "organizations" => Some(Authority::Organizations),
            "common" => Some(Authority::Common),
            s => match Uuid::parse_str(s) {
                Ok(id) => self.tenant_index(id).map(Authority::Tenant),
                Err(_) => self
                    .tenants
                    .iter()
                    .position(|t| t.has_domain(s))
                    .map(Authority::Tenant),
            },
        }
    }

    /// Finds a user by sign-in name among the tenants `authority` allows: (tenant, user index).
    pub fn find_login(&self, authority: Authority, login: &str) -> Option<(usize, usize)> {
        let candidates: Vec<usize> = match authority {
            Authority::Tenant(t) => vec![t],
            _ => (0..self.tenants.len()).collect(),
        };
        candidates.into_iter().find_map(|t| {
            let idx = self.tenants[t].user_index(login.trim())?;
            // Only user names sign in, not object ids.
            Uuid::parse_str(login.trim()).is_err().then_some((t, idx))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_tenant() {
        let a = Tenant::generate(9, 0, None, 50, 3, None);
        let b = Tenant::generate(9, 0, None, 50, 3, None);
        assert_eq!(a.id, b.id);
        let names = |t: &Tenant| {
            t.users
                .iter()
                .map(|u| (u.id, u.user_principal_name.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&a), names(&b));
        assert_ne!(Tenant::generate(10, 0, None, 1, 0, None).id, a.id);
    }

    #[test]
    fn memberships_are_dealt_evenly_over_the_groups() {
        let t = Tenant::generate(3, 0, None, 10, 4, Some(25));
        let sizes: Vec<usize> = t.groups.iter().map(|g| g.members.len()).collect();
        assert_eq!(sizes, [7, 6, 6, 6]);
        let mut per_user = HashMap::new();
        for g in &t.groups {
            for m in &g.members {
                *per_user.entry(*m).or_insert(0) += 1;
            }
        }
        assert_eq!(per_user.len(), 10, "every user is in a group");
        assert!(
            per_user.values().all(|n| (2..=3).contains(n)),
            "{per_user:?}"
        );
        // No more than every user in every group.
        let full = Tenant::generate(3, 0, None, 3, 2, Some(100));
        assert!(full.groups.iter().all(|g| g.members.len() == 3));
    }

    #[test]
    fn passwords_follow_the_documented_rule() {
        let id = Uuid::parse_str("1a2b3c4d-0000-4000-8000-000000000000").unwrap();
        assert_eq!(seeded_password(id), "Emu-1a2b3c4d!");
    }

    #[test]
    fn tenants_resolve_by_guid_and_domain_and_logins_by_upn() {
        let dir = Directory::seeded(1, 2, 5, 1, None);
        let t = &dir.tenants[1];
        assert_eq!(dir.resolve(&t.id.to_string()), Some(Authority::Tenant(1)));
        assert_eq!(
            dir.resolve(&t.domains[1].name.to_uppercase()),
            Some(Authority::Tenant(1))
        );
        assert_eq!(dir.resolve("Organizations"), Some(Authority::Organizations));
        assert_eq!(dir.resolve("nowhere.example"), None);
        let admin = t.admin().unwrap();
        assert_eq!(
            dir.find_login(
                Authority::Organizations,
                &admin.user_principal_name.to_uppercase()
            ),
            Some((1, 0))
        );
        assert_eq!(
            dir.find_login(Authority::Tenant(0), &admin.user_principal_name),
            None
        );
        assert_eq!(
            dir.find_login(Authority::Common, &admin.id.to_string()),
            None,
            "object ids do not sign in"
        );
    }
}
