// Placeholder pages: the navigation only.
import { mountNav } from "./nav.js";

mountNav(document.body.dataset.page);
